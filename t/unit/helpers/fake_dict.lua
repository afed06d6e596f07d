-- An in-memory stand-in for one ngx.shared.DICT zone, following the semantics
-- of lua-nginx-module's shdict (ngx_http_lua_shdict.c) and lua-resty-core's
-- resty/core/shdict.lua as far as resty.worker.manager can observe them:
--
-- * Expiry is judged against nginx's CACHED clock (ngx.now(), read through the
--   `clock` function given to new()), in whole milliseconds: a key stored with
--   exptime E at cached time T expires when the cached time passes T + E
--   (E * 1000 is truncated to an integer, so 0 < E < 0.001 means "never", as
--   in nginx). An expired key is invisible to get/add/incr/ttl/get_keys.
-- * Memory is an optional byte budget: every entry costs OVERHEAD + #key +
--   the value's size (8 for numbers, 1 for booleans, #s for strings).
--   set/add/incr-with-init evict least-recently-used entries (forcible = true)
--   when the budget is exhausted, like nginx; safe_set/safe_add fail with
--   "no memory" instead. Overwriting a value of the same size reuses the entry
--   and never fails; a value of another size frees the old entry first, so a
--   failing safe_set of a different-sized value loses the old value, as in
--   nginx.
-- * Every method checks that it was called with `:` on this very dict; a
--   `.` call fails loudly ("called with . instead of :").
--
-- Test-only helpers are module functions, not methods: fake_dict.keys(d),
-- fake_dict.fill(d, prefix), fake_dict.calls(d), fake_dict.used(d).

local M = {}

M.OVERHEAD = 64
M.DEFAULT_CAPACITY = 1024 * 1024

local function value_size(v)
    local t = type(v)
    if t == "number" then
        return 8
    elseif t == "boolean" then
        return 1
    end
    return #v
end

local registry = setmetatable({}, { __mode = "k" })

--- new{ capacity = bytes (default 1 MiB), clock = function() return ngx.now() end }
function M.new(opts)
    opts = opts or {}
    local capacity = opts.capacity or M.DEFAULT_CAPACITY
    local clock = opts.clock or function() return ngx.now() end

    local entries = {}   -- key -> { value, flags, expires (ms, 0 = never), size, touched }
    local used = 0
    local tick = 0
    local calls = {}     -- method name -> number of calls

    local dict = {}

    local function now_ms()
        return math.floor(clock() * 1000 + 0.5)
    end

    local function check_self(self, method)
        calls[method] = (calls[method] or 0) + 1
        if self ~= dict then
            error("fake shdict: " .. method .. " called with . instead of : (first argument is "
                  .. type(self) .. " '" .. tostring(self) .. "')", 3)
        end
    end

    -- resty.core's key checks: nil key and empty key are soft errors.
    local function check_key(key)
        if key == nil then
            return nil, "nil key"
        end
        if type(key) ~= "string" then
            key = tostring(key)
        end
        if #key == 0 then
            return nil, "empty key"
        end
        if #key > 65535 then
            return nil, "key too long"
        end
        return key
    end

    local function expired(e)
        return e.expires ~= 0 and now_ms() > e.expires
    end

    local function free(key)
        local e = entries[key]
        if e then
            used = used - e.size
            entries[key] = nil
        end
    end

    -- Looks a key up like ngx_http_lua_shdict_lookup: found entries become the
    -- most recently used; returns the entry and whether it expired.
    local function lookup(key)
        local e = entries[key]
        if not e then
            return nil
        end
        tick = tick + 1
        e.touched = tick
        return e, expired(e)
    end

    -- nginx drops expired entries lazily; here they are dropped before any
    -- allocation so the budget only counts live data (approximation).
    local function purge_expired()
        for k, e in pairs(entries) do
            if expired(e) then
                free(k)
            end
        end
    end

    local function evict_lru()
        local victim, oldest
        for k, e in pairs(entries) do
            if oldest == nil or e.touched < oldest then
                victim, oldest = k, e.touched
            end
        end
        if victim == nil then
            return false
        end
        free(victim)
        return true
    end

    -- Allocates `size` bytes; with `forcible`, evicts up to 30 LRU entries
    -- (like ngx_http_lua_shdict_expire(ctx, 0)). Returns ok, evicted_any.
    local function allocate(size, forcible)
        purge_expired()
        if used + size <= capacity then
            used = used + size
            return true, false
        end
        if not forcible then
            return false, false
        end
        local evicted = false
        for _ = 1, 30 do
            if not evict_lru() then
                break
            end
            evicted = true
            if used + size <= capacity then
                used = used + size
                return true, evicted
            end
        end
        return false, evicted
    end

    local function expires_at(exptime)
        local ms = math.floor((exptime or 0) * 1000)
        if ms > 0 then
            return now_ms() + ms
        end
        return 0
    end

    local function insert(key, value, exptime, flags, forcible)
        local size = M.OVERHEAD + #key + value_size(value)
        local ok, evicted = allocate(size, forcible)
        if not ok then
            return false, "no memory", evicted
        end
        tick = tick + 1
        entries[key] = {
            value = value, flags = flags or 0, expires = expires_at(exptime), size = size,
            touched = tick,
        }
        return true, nil, evicted
    end

    local function store(add, safe, key, value, exptime, flags)
        if exptime ~= nil and exptime < 0 then
            error('bad "exptime" argument', 3)
        end
        local err
        key, err = check_key(key)
        if not key then
            return nil, err
        end
        local vt = type(value)
        if value ~= nil and vt ~= "string" and vt ~= "number" and vt ~= "boolean" then
            return nil, "bad value type"
        end
        if value == nil and add then
            return false, "attempt to add or replace nil values", false
        end
        local e, is_expired = lookup(key)
        if add and e and not is_expired then
            return false, "exists", false
        end
        if e then
            if value ~= nil and value_size(value) == value_size(e.value) then
                -- nginx reuses the entry in place: never fails, never evicts.
                e.value = value
                e.flags = flags or 0
                e.expires = expires_at(exptime)
                return true, nil, false
            end
            free(key)
        end
        if value == nil then
            return true, nil, false
        end
        return insert(key, value, exptime, flags, not safe)
    end

    function dict.get(self, key)
        check_self(self, "get")
        local err
        key, err = check_key(key)
        if not key then
            return nil, err
        end
        local e, is_expired = lookup(key)
        if not e or is_expired then
            return nil
        end
        if e.flags ~= 0 then
            return e.value, e.flags
        end
        return e.value
    end

    function dict.set(self, key, value, exptime, flags)
        check_self(self, "set")
        return store(false, false, key, value, exptime, flags)
    end

    function dict.safe_set(self, key, value, exptime, flags)
        check_self(self, "safe_set")
        return store(false, true, key, value, exptime, flags)
    end

    function dict.add(self, key, value, exptime, flags)
        check_self(self, "add")
        return store(true, false, key, value, exptime, flags)
    end

    function dict.safe_add(self, key, value, exptime, flags)
        check_self(self, "safe_add")
        return store(true, true, key, value, exptime, flags)
    end

    function dict.replace(self, key, value, exptime, flags)
        check_self(self, "replace")
        local k = check_key(key)
        local e, is_expired = lookup(k or "")
        if not k or not e or is_expired then
            return false, "not found", false
        end
        return store(false, false, key, value, exptime, flags)
    end

    function dict.delete(self, key)
        check_self(self, "delete")
        return store(false, false, key, nil)
    end

    function dict.incr(self, key, value, init, init_ttl)
        check_self(self, "incr")
        local err
        key, err = check_key(key)
        if not key then
            return nil, err
        end
        if type(value) ~= "number" then
            value = tonumber(value)
            if value == nil then
                error("cannot convert 'nil' to 'double'", 2)
            end
        end
        if init ~= nil and type(init) ~= "number" then
            error("bad init arg: number expected, got " .. type(init), 2)
        end
        if init_ttl ~= nil then
            if type(init_ttl) ~= "number" or init_ttl < 0 then
                error('bad "init_ttl" argument', 2)
            end
            if init == nil then
                error('must provide "init" when providing "init_ttl"', 2)
            end
        end
        local e, is_expired = lookup(key)
        if e and not is_expired then
            if type(e.value) ~= "number" then
                return nil, "not a number"
            end
            e.value = e.value + value
            return e.value
        end
        if init == nil then
            return nil, "not found"
        end
        local num = init + value
        if e then
            -- An expired number is reused in place, like nginx.
            if type(e.value) == "number" then
                e.value = num
                e.flags = 0
                e.expires = expires_at(init_ttl)
                return num, nil, false
            end
            free(key)
        end
        local ok, ierr, forcible = insert(key, num, init_ttl, 0, true)
        if not ok then
            return nil, ierr, forcible
        end
        return num, nil, forcible
    end

    function dict.ttl(self, key)
        check_self(self, "ttl")
        local err
        key, err = check_key(key)
        if not key then
            return nil, err
        end
        local e, is_expired = lookup(key)
        if not e or is_expired then
            return nil, "not found"
        end
        if e.expires == 0 then
            return 0
        end
        return (e.expires - now_ms()) / 1000
    end

    function dict.expire(self, key, exptime)
        check_self(self, "expire")
        if exptime == nil then
            error('bad "exptime" argument', 2)
        end
        local e, is_expired = lookup(key)
        if not e or is_expired then
            return nil, "not found"
        end
        e.expires = expires_at(exptime)
        return true
    end

    function dict.get_keys(self, max_count)
        check_self(self, "get_keys")
        max_count = max_count or 1024
        local live = {}
        for k, e in pairs(entries) do
            if not expired(e) then
                live[#live + 1] = { key = k, touched = e.touched }
            end
        end
        -- nginx walks its LRU queue: most recently used first.
        table.sort(live, function(a, b) return a.touched > b.touched end)
        local keys = {}
        for i, item in ipairs(live) do
            if max_count ~= 0 and i > max_count then
                break
            end
            keys[i] = item.key
        end
        return keys
    end

    function dict.flush_all(self)
        check_self(self, "flush_all")
        for _, e in pairs(entries) do
            e.expires = 1  -- long expired
        end
    end

    function dict.flush_expired(self, max_count)
        check_self(self, "flush_expired")
        local n = 0
        for k, e in pairs(entries) do
            if expired(e) and (not max_count or max_count == 0 or n < max_count) then
                free(k)
                n = n + 1
            end
        end
        return n
    end

    function dict.capacity(self)
        check_self(self, "capacity")
        return capacity
    end

    function dict.free_space(self)
        check_self(self, "free_space")
        purge_expired()
        return math.max(capacity - used, 0)
    end

    registry[dict] = {
        entries = entries,
        calls = calls,
        used = function() return used end,
        alive = function(k) local e = entries[k]; return e ~= nil and not expired(e) end,
        set_capacity = function(c) capacity = c end,
    }
    return dict
end

local function internals(d)
    local i = registry[d]
    assert(i, "not a fake dict")
    return i
end

--- Sorted list of the keys currently alive in `d` (no side effects on LRU).
function M.keys(d, pattern)
    local i = internals(d)
    local out = {}
    for k in pairs(i.entries) do
        if i.alive(k) and (pattern == nil or k:find(pattern)) then
            out[#out + 1] = k
        end
    end
    table.sort(out)
    return out
end

--- Number of calls of each method so far: calls(d).delete, ...
function M.calls(d)
    return internals(d).calls
end

--- Bytes currently accounted.
function M.used(d)
    return internals(d).used()
end

--- Writes other users' keys `prefix .. n` with safe_set until the dict is full
-- (exactly full when it can, see the pad); returns how many numbers it wrote.
-- Afterwards not even the smallest entry fits.
function M.fill(d, prefix)
    prefix = prefix or "other:"
    local n = 0
    while true do
        local ok = d:safe_set(prefix .. n, n)
        if not ok then
            break
        end
        n = n + 1
    end
    -- Use up the remainder too, so that even a one-character key cannot fit.
    local pad = prefix .. "pad"
    local rest = d:free_space() - M.OVERHEAD - #pad
    if rest < 0 and n > 0 then
        n = n - 1
        d:delete(prefix .. n)
        rest = d:free_space() - M.OVERHEAD - #pad
    end
    if rest >= 0 then
        assert(d:safe_set(pad, string.rep("x", rest)))
    end
    assert(d:free_space() < M.OVERHEAD + 2, "fake_dict.fill: could not fill the dict")
    return n
end

return M
