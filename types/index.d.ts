/**
 * The declarations this package gives a TypeScriptToLua project: the module
 * (`import * as manager from "resty.worker.manager"`), the part of the
 * nginx Lua API (`ngx`) that the module and the README's recipes use, and
 * lua-resty-lock (to take the node lock from your own code). List the
 * package in your tsconfig's "types": ["lua-resty-worker-manager"].
 */
/// <reference path="./resty.worker.manager.d.ts" />
/// <reference path="./ngx.d.ts" />
/// <reference path="./resty.lock.d.ts" />
