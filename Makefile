# lua-resty-worker-manager
#
#   make test    install what is missing, build, type-check, lint, run every suite
#   make demo    a scripted tour on a real nginx, drawn as an SVG timeline
#                (installs the Debian packages it needs, saying so first)
#   make demo-serve  that nginx kept up to play with, its timeline live
#   make build   compile src/ (TypeScript) to lib/ (Lua); lib/ is committed, so
#                a clone or a release tarball needs no node (plain `make` then
#                only checks that lib/ is there)
#   make install PREFIX=/usr/local LUA_LIB_DIR=...   copy lib/ like other lua-resty libraries
#   make dist    release tarball + .src.rock (compiled Lua, rockspec) in dist/
#
# WM_NGINX picks the nginx binary for the tests and the demo (default: Debian's
# /usr/sbin/nginx with its dynamic lua module; set it to OpenResty's nginx
# together with WM_LOAD_MODULES= to use that instead).

PREFIX      ?= /usr/local
LUA_VERSION ?= 5.1
LUA_LIB_DIR ?= $(PREFIX)/share/lua/$(LUA_VERSION)
INSTALL     ?= install

# what the demo needs (nginx, its lua module, luajit to draw the timeline,
# Redis and Debian's lua-resty-redis for its fleet of two nodes);
# the tests need more: busted, luacheck, luarocks, and chromium, a headless
# browser for the demo's live page
APT_DEMO     := nginx-light libnginx-mod-http-lua lua-resty-core luajit2 redis-server lua-nginx-redis
APT_PACKAGES := $(APT_DEMO) lua-busted lua-check luarocks chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VERSION := $(shell sed -n 's/^const _VERSION: string = "\(.*\)";/\1/p' src/resty/worker/manager.ts 2>/dev/null)
RELEASE := lua-resty-worker-manager-$(VERSION)
TSTL := node_modules/.bin/tstl
TSC  := node_modules/.bin/tsc

.PHONY: all deps apt npm build typecheck lint test test-unit test-nginx demo install dist clean

# With node and the TypeScript sources: build. Without (a clone on a
# machine with no node, the release tarball): lib/ is prebuilt, and
# `make install` or luarocks take it as it is.
all:
	@if [ -f package.json ] && command -v node >/dev/null 2>&1; then \
	    $(MAKE) --no-print-directory build; \
	else \
	    test -f lib/resty/worker/manager.lua || { echo "lib/ is missing and there is no node to build it"; exit 1; }; \
	    echo "lib/ is prebuilt: nothing to build (make install, or luarocks make, installs it)"; \
	fi

deps: apt npm

# $(call apt_install,TARGET,PACKAGES): installs only the Debian packages
# that are missing, so a ready machine does not touch the network, and
# says which and why before it does.
define apt_install
	@missing=""; for p in $(2); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "$(1) needs Debian packages that are not installed:$$missing"; \
	    echo "installing them: $(strip $(SUDO) apt-get install)$$missing"; \
	    $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

apt:
	$(call apt_install,make test,$(APT_PACKAGES))

demo-apt:
	$(call apt_install,make demo,$(APT_DEMO))

npm: node_modules/.package-lock.json

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

build: npm
	$(TSTL) -p tsconfig.json

# The second run proves types/resty.worker.manager.d.ts (for TypeScript
# users) matches src/, and the emitted use of it is a plain require + dot calls.
typecheck: npm
	$(TSC) -p tsconfig.json --noEmit
	$(TSC) -p t/types/tsconfig.json
	@out=$$(mktemp -d) && $(TSTL) -p t/types/tsconfig.json --noEmit false --outDir $$out && \
	  lua=$$(find $$out -name usage.lua) && \
	  grep -q 'local manager = require("resty.worker.manager")' $$lua && \
	  grep -q 'manager.on_init_by_lua({shm = ' $$lua && \
	  grep -q 'manager.on_init_worker_by_lua(log_event, log_event)' $$lua && \
	  rm -rf $$out && echo "types: declarations match src/ and compile to plain Lua calls"

# Two gates besides luacheck: no TSTL runtime helpers (they would need a
# lualib module at run time) and no implicit `self` on our functions.
# lib/ is committed for users without node: it must be exactly what src/
# compiles to (compiled apart, into a temporary folder, and compared), so
# run `make build` and commit lib/ with every change of src/.
lint: npm typecheck
	@out=$$(mktemp -d) && $(TSTL) -p tsconfig.json --outDir $$out >/dev/null && \
	  if ! diff -r -q $$out lib >/dev/null 2>&1; then \
	    diff -r -q $$out lib | sed "s|$$out|<src/ compiled>|"; rm -rf $$out; \
	    echo "lint: lib/ is not what src/ compiles to: run make build and commit lib/"; exit 1; \
	  fi; rm -rf $$out; echo "lib/ is what src/ compiles to"
	@# lib/ and the Lua written by hand (.luacheckrc)
	luacheck --no-color -q lib t/unit t/lib nginx t/bench
	@if grep -rn '__TS__' lib; then echo "lint: TSTL runtime helpers found in lib/ (see above)"; exit 1; fi
	@if grep -rnE 'function[^(]*\(self' lib; then echo "lint: functions with a self parameter in lib/"; exit 1; fi
	@# lib/ reads as written by hand (src/polish_lua.cjs does the layout; the
	@# rest is kept out of src/ by habit): no TSTL machine names (____temp_0,
	@# ____exports), no `goto __continue` (write loops without continue), no
	@# forward declarations of hoisted functions (define before use), and a
	@# header naming the TypeScript source
	@if grep -rnE '____|goto __continue' lib; then echo "lint: machine names in lib/ (see above): change the TypeScript so TSTL needs none"; exit 1; fi
	@if grep -rnE '^local [A-Za-z_]+(, [A-Za-z_]+)*$$' lib; then echo "lint: forward declarations in lib/ (see above): define functions and variables before use"; exit 1; fi
	@for f in $$(find lib -name '*.lua'); do \
	    head -1 $$f | grep -q '^-- Compiled from src/.*\.ts by TypeScriptToLua' || { echo "lint: $$f has no header naming its TypeScript source"; exit 1; }; \
	done; echo "lib/ reads as written by hand: no machine names, no forward declarations, headers"
	@for r in rockspec/*.rockspec; do \
	    want=$$(cd lib && find . -name '*.lua' | sed 's|^\./||' | sort); \
	    have=$$(sed -n 's|.*= "lib/\(.*\.lua\)",|\1|p' $$r | sort); \
	    [ "$$want" = "$$have" ] || { echo "lint: $$r does not list exactly the modules in lib/"; exit 1; }; \
	done
	@test -f rockspec/$(RELEASE)-1.rockspec || { echo "lint: no rockspec for version $(VERSION)"; exit 1; }
	@# the rockspecs: valid for luarocks, with a homepage, the requirements
	@# luarocks cannot express said in description.detailed, and a source
	@# that names the version (or, for scm, the branch)
	@for r in rockspec/*.rockspec; do \
	    luarocks lint $$r >/dev/null || { echo "lint: luarocks lint $$r fails"; exit 1; }; \
	    grep -q '^   homepage = "https://' $$r || { echo "lint: $$r has no homepage"; exit 1; }; \
	    grep -q 'lua-nginx-module' $$r && grep -q 'lua-resty-core' $$r && grep -q 'LuaJIT' $$r \
	      || { echo "lint: $$r does not state LuaJIT, lua-nginx-module and lua-resty-core"; exit 1; }; \
	done
	@grep -q 'url = ".*$(VERSION).*"' rockspec/$(RELEASE)-1.rockspec || { echo "lint: the $(VERSION) rockspec's source.url names no version"; exit 1; }
	@grep -q 'branch = "main"' rockspec/lua-resty-worker-manager-scm-1.rockspec || { echo "lint: the scm rockspec follows no branch"; exit 1; }

test-unit: build
	busted --lua=luajit

test-nginx: build
	prove -I t/lib -r t

# The stages of make test, run in order; it stops at the first that fails
# and ends with what ran, how it went and how long each took.
TEST_STAGES := deps lint test-unit test-nginx bench-smoke soak-quick

test:
	@summary=""; status=0; \
	for stage in $(TEST_STAGES); do \
	    start=$$(date +%s); \
	    if $(MAKE) --no-print-directory $$stage; then result=ok; else result=FAILED; status=1; fi; \
	    summary="$$summary$$(printf '  %-12s %-7s %5ss' $$stage $$result $$(( $$(date +%s) - start )))\n"; \
	    [ $$status = 0 ] || break; \
	done; \
	printf '\nmake test, by stage:\n%b' "$$summary"; \
	[ $$status = 0 ] && echo "make test: all stages passed" || echo "make test: stopped at a failed stage"; \
	exit $$status

# The demo runs the committed lib/ (no node needed; `make build` first after
# changing src/) and draws its run in demo-out/timeline.svg.
demo: demo-apt
	@perl -I t/lib nginx/demo.pl

# The same node as `make demo`, kept up for hands-on play until Ctrl-C
# (on a free port, or DEMO_PORT=8080), its timeline live at /timeline.
.PHONY: demo-serve demo-apt
demo-serve: demo-apt
	@perl -I t/lib nginx/demo.pl --serve $(if $(DEMO_PORT),--port $(DEMO_PORT))

# The benchmark: real nginx nodes, a markdown table on stdout and
# the same as JSON (and .md) in t/bench/out/. wrk is installed when missing.
# bench-smoke runs every row once with few trials (under 30 s); it fails only
# when the bench machinery does, not when a target is missed.
BENCH_WRK = command -v wrk >/dev/null 2>&1 || { echo "installing: wrk"; \
	$(SUDO) apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends wrk; }

.PHONY: bench bench-smoke

bench: apt build
	@$(BENCH_WRK)
	perl t/bench/bench.pl

bench-smoke: apt build
	@$(BENCH_WRK)
	perl t/bench/bench.pl --smoke

# The soak (issue 6): random reloads, kill -9 of workers, failed reloads,
# stops (QUIT, TERM) and restarts on real nginx nodes for DURATION seconds,
# the invariant checker on every node lifetime; one summary table, exit 1 on
# any violation.  SOAK_SEED=<n> fixes the random decisions (printed first).
# soak-quick runs it for 30 s and is part of `make test`.
DURATION ?= 600

.PHONY: soak soak-quick soak-fleet

soak: apt build
	perl t/soak/soak.pl --duration $(DURATION)

soak-quick: apt build
	perl t/soak/soak.pl --duration 30
	perl t/soak/fleet.pl --duration 30

# The fleet soak: three nodes on one Redis, node kills and freezes, reloads,
# Redis restarts and freezes (t/soak/fleet.pl)
soak-fleet: apt build
	perl t/soak/fleet.pl --duration $(DURATION)

# No build here: a release tarball ships lib/ compiled and has no node.
install:
	@test -f lib/resty/worker/manager.lua || { echo "lib/ is not built: run make build first"; exit 1; }
	$(INSTALL) -d $(DESTDIR)$(LUA_LIB_DIR)/resty/worker/manager
	$(INSTALL) -m 644 lib/resty/worker/manager.lua $(DESTDIR)$(LUA_LIB_DIR)/resty/worker/
	$(INSTALL) -m 644 lib/resty/worker/manager/*.lua $(DESTDIR)$(LUA_LIB_DIR)/resty/worker/manager/

# The tarball holds the compiled Lua, so installing it needs no node; the
# .src.rock (rockspec + tarball) installs offline: luarocks install dist/*.src.rock
dist: build
	rm -rf dist && mkdir -p dist/$(RELEASE)
	cp -r lib docs README.md CHANGELOG.md LICENSE Makefile dist/$(RELEASE)/
	mkdir -p dist/$(RELEASE)/nginx && cp nginx/example.conf dist/$(RELEASE)/nginx/
	cp rockspec/$(RELEASE)-1.rockspec dist/
	tar -C dist -czf dist/$(RELEASE).tar.gz $(RELEASE)
	cd dist && zip -q $(RELEASE)-1.src.rock $(RELEASE)-1.rockspec $(RELEASE).tar.gz
	rm -rf dist/$(RELEASE)
	@ls dist

# lib/ is committed: clean leaves it (make build writes it again)
clean:
	rm -rf dist demo-out
