rockspec_format = "3.0"
package = "lua-resty-worker-manager"
version = "scm-1"
source = {
   url = "git+https://github.com/lua-resty-worker-manager/lua-resty-worker-manager.git",
   branch = "main",
}
description = {
   summary = "Tells OpenResty code what happens to its nginx node: start, reload, stop, worker crashes",
   detailed = [[
      resty.worker.manager runs your callbacks cb(id, n_prev, n_mine, n_next)
      at master start, master exit, worker start and worker exit of an nginx
      node (start, HUP reloads, stops, workers that crash or are replaced),
      one at a time under a node-wide lock kept in a lua_shared_dict, each
      told how many workers run in older, the same and newer configuration
      generations; an optional callback hears of each worker found dead.

      Requirements that are not rocks, so not listed as dependencies: LuaJIT
      and lua-nginx-module 0.10.18 or later (OpenResty, or nginx with the
      module) with lua-resty-core, which OpenResty bundles and Debian ships
      as lua-resty-core. The Lua in lib/ is compiled from TypeScript and
      committed: installing needs no node.

      The fleet (opts.cluster) also needs lua-resty-redis (luarocks install
      lua-resty-redis; OpenResty bundles it; Debian: lua-nginx-redis) and a
      Redis server (6.2 or later; Sentinel for failover). It is not listed
      as a dependency: a node without opts.cluster never loads it.
   ]],
   homepage = "https://github.com/lua-resty-worker-manager/lua-resty-worker-manager",
   license = "MIT",
   maintainer = "lua-resty-worker-manager maintainers",
   labels = { "openresty", "nginx", "lifecycle" },
}
dependencies = {
   "lua ~> 5.1",   -- LuaJIT: see description.detailed
}
build = {
   type = "builtin",
   modules = {
      ["resty.worker.manager"] = "lib/resty/worker/manager.lua",
      ["resty.worker.manager.callbacks"] = "lib/resty/worker/manager/callbacks.lua",
      ["resty.worker.manager.cluster.driver"] = "lib/resty/worker/manager/cluster/driver.lua",
      ["resty.worker.manager.cluster.fleet"] = "lib/resty/worker/manager/cluster/fleet.lua",
      ["resty.worker.manager.cluster.leases"] = "lib/resty/worker/manager/cluster/leases.lua",
      ["resty.worker.manager.cluster.options"] = "lib/resty/worker/manager/cluster/options.lua",
      ["resty.worker.manager.cluster.scripts"] = "lib/resty/worker/manager/cluster/scripts.lua",
      ["resty.worker.manager.crash_record"] = "lib/resty/worker/manager/crash_record.lua",
      ["resty.worker.manager.exit_reason"] = "lib/resty/worker/manager/exit_reason.lua",
      ["resty.worker.manager.holding"] = "lib/resty/worker/manager/holding.lua",
      ["resty.worker.manager.host"] = "lib/resty/worker/manager/host.lua",
      ["resty.worker.manager.keys"] = "lib/resty/worker/manager/keys.lua",
      ["resty.worker.manager.listeners"] = "lib/resty/worker/manager/listeners.lua",
      ["resty.worker.manager.liveness"] = "lib/resty/worker/manager/liveness.lua",
      ["resty.worker.manager.reports"] = "lib/resty/worker/manager/reports.lua",
      ["resty.worker.manager.lock"] = "lib/resty/worker/manager/lock.lua",
      ["resty.worker.manager.log"] = "lib/resty/worker/manager/log.lua",
      ["resty.worker.manager.missed_beats"] = "lib/resty/worker/manager/missed_beats.lua",
      ["resty.worker.manager.record"] = "lib/resty/worker/manager/record.lua",
      ["resty.worker.manager.registry"] = "lib/resty/worker/manager/registry.lua",
      ["resty.worker.manager.resume"] = "lib/resty/worker/manager/resume.lua",
      ["resty.worker.manager.singletons"] = "lib/resty/worker/manager/singletons.lua",
      ["resty.worker.manager.status"] = "lib/resty/worker/manager/status.lua",
      ["resty.worker.manager.store"] = "lib/resty/worker/manager/store.lua",
   },
}
