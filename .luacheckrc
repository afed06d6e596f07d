-- luacheck for lib/ (compiled, then laid out by StyLua within 120 columns;
-- the Redis scripts are long strings) and for the Lua written by hand: the
-- unit specs, the test helpers, the demo and the bench (140 columns: test
-- names, log lines and SVG attributes are long strings).
std = "ngx_lua"
max_line_length = 140
max_string_line_length = false
max_comment_line_length = false
files["lib"] = { max_line_length = false }
-- the specs stub io.open to feed /proc files
files["t/unit"] = { std = "+busted", ignore = { "122/io" } }
