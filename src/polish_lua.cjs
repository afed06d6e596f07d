// The build step after TypeScriptToLua: a TSTL plugin (tsconfig.json,
// "luaPlugins") that makes lib/ read like Lua written by hand for OpenResty.
// It is not part of the module; `make build` and `make lint` run it.
//
//  - keeps the `//` comments of src/ (TSTL keeps only JSDoc ones);
//  - prints `a .. b .. c` without the parentheses TSTL puts around
//    left-nested concatenations (`..` of strings is associative);
//  - names the module table `_M` (with `_VERSION` in it), folds
//    `local ____x = require(...)` aliases into plain requires, writes `_`
//    for ignored values, puts blank lines between top-level functions and
//    a header that names the TypeScript source;
//  - formats the result with StyLua (a WebAssembly build from npm).
//
// What it cannot fix (machine names such as `____temp_0`, `goto __continue`,
// forward declarations of hoisted functions) is kept out by source habits
// and by the gate in `make lint`.
"use strict";

const path = require("path");
const ts = require("typescript");
const tstl = require("typescript-to-lua");
const stylua = require("@johnnymorganz/stylua");

// ---------------------------------------------------------------- comments

const STATEMENTS = [
    ts.SyntaxKind.VariableStatement,
    ts.SyntaxKind.ExpressionStatement,
    ts.SyntaxKind.IfStatement,
    ts.SyntaxKind.ReturnStatement,
    ts.SyntaxKind.ForOfStatement,
    ts.SyntaxKind.ForInStatement,
    ts.SyntaxKind.ForStatement,
    ts.SyntaxKind.WhileStatement,
    ts.SyntaxKind.DoStatement,
    ts.SyntaxKind.FunctionDeclaration,
    ts.SyntaxKind.ThrowStatement,
    ts.SyntaxKind.BreakStatement,
    ts.SyntaxKind.SwitchStatement,
    ts.SyntaxKind.TryStatement,
    ts.SyntaxKind.ImportDeclaration,
    ts.SyntaxKind.ExportDeclaration,
    ts.SyntaxKind.Block,
];

/** The `//` comments before a statement (JSDoc ones TSTL keeps itself). */
function line_comments(node) {
    // nodes TSTL makes itself (a `for` loop's incrementor) have no source
    if (node.pos < 0 || node.getSourceFile() === undefined) return [];
    const text = node.getSourceFile().getFullText();
    const ranges = ts.getLeadingCommentRanges(text, node.getFullStart()) || [];
    const lines = [];
    for (const r of ranges) {
        if (r.kind === ts.SyntaxKind.SingleLineCommentTrivia) {
            lines.push(text.slice(r.pos + 2, r.end).replace(/\s+$/, ""));
        }
    }
    return lines.map((l) => (l.trim() === "" ? "" : l));
}

/** Stands for a blank line of the source before a statement (see Printer.printComment). */
const BLANK = "\u0000blank";

/** Whether the source has a blank line before the statement (before its comments). */
function blank_before(node) {
    if (node.pos < 0 || node.getSourceFile() === undefined) return false;
    const text = node.getSourceFile().getFullText();
    const trivia = text.slice(node.getFullStart(), node.getStart());
    const before_comments = trivia.split(/\/\/|\/\*/)[0];
    return /\n[ \t]*\r?\n/.test(before_comments);
}

function keep_comments(node, context) {
    const out = context.superTransformStatements(node);
    const lines = line_comments(node);
    if (blank_before(node)) lines.unshift(BLANK);
    if (lines.length > 0 && out.length > 0) {
        const first = out[0];
        first.leadingComments = [...lines, ...(first.leadingComments || [])];
    }
    return out;
}

/** The file's own doc comment, before its imports (TSTL keeps JSDoc only on declarations). */
function file_doc(node) {
    const text = node.getFullText();
    const first = node.statements[0];
    if (first === undefined || !ts.isImportDeclaration(first)) return [];
    const lines = [];
    for (const r of ts.getLeadingCommentRanges(text, 0) || []) {
        if (r.kind !== ts.SyntaxKind.MultiLineCommentTrivia) continue;
        const body = text.slice(r.pos, r.end).replace(/^\/\*\*?/, "").replace(/\*\/$/, "");
        for (const line of body.split("\n")) lines.push(line.replace(/^\s*\* ?/, " ").replace(/\s+$/, ""));
    }
    while (lines.length > 0 && lines[0] === "") lines.shift();
    while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
    return lines;
}

function keep_file_doc(node, context) {
    const out = context.superTransformNode(node);
    const file = out[0];
    const doc = file_doc(node);
    if (doc.length > 0 && file && file.statements && file.statements.length > 0) {
        const first = file.statements[0];
        first.leadingComments = [...doc, ...(first.leadingComments || [])];
    }
    return out;
}

const visitors = { [ts.SyntaxKind.SourceFile]: keep_file_doc };
for (const kind of STATEMENTS) visitors[kind] = keep_comments;

// ---------------------------------------------------------------- printer

class Printer extends tstl.LuaPrinter {
    printComment(comment) {
        if (comment === BLANK) return "";
        return super.printComment(comment);
    }

    printBinaryExpression(expression) {
        if (expression.operator !== tstl.SyntaxKind.ConcatOperator) {
            return super.printBinaryExpression(expression);
        }
        const precedence = tstl.LuaPrinter.operatorPrecedence[expression.operator];
        return this.createSourceNode(expression, [
            this.printExpressionInParenthesesIfNeeded(expression.left, precedence),
            " .. ",
            this.printExpressionInParenthesesIfNeeded(expression.right, precedence),
        ]);
    }
}

function printer(program, emitHost, fileName, file) {
    return new Printer(emitHost, program, fileName).print(file);
}

// ---------------------------------------------------------------- text

const TSTL_HEADER = tstl.tstlHeader;

/** Whether `name` is an identifier in `code` (comments and strings aside). */
function uses(code, name) {
    const bare = code.replace(/--[^\n]*/g, "").replace(/"(?:[^"\\\n]|\\.)*"/g, '""');
    return new RegExp(`(^|[^\\w.])${name}\\b`).test(bare);
}

/**
 * `local ____m = require("a.b.m")` and the `local x = ____m.x` lines after it
 * become `local x = require("a.b.m").x` (one name) or a local named after
 * the module (several).
 */
function fold_requires(code) {
    const lines = code.split("\n");
    const out = [];
    for (let i = 0; i < lines.length; i++) {
        const req = /^local (____\w+) = (require\("([\w.]+)"\))$/.exec(lines[i]);
        if (!req) {
            out.push(lines[i]);
            continue;
        }
        const [, alias, call, mod] = req;
        const names = [];
        while (i + 1 < lines.length) {
            const m = new RegExp(`^local (\\w+) = ${alias}\\.(\\w+)$`).exec(lines[i + 1]);
            if (!m) break;
            names.push(m);
            i++;
        }
        if (names.length === 1) {
            out.push(`local ${names[0][1]} = ${call}.${names[0][2]}`);
            continue;
        }
        let local = mod.split(".").pop();
        const rest = lines.slice(i + 1).join("\n") + out.join("\n");
        if (uses(rest, local)) local = `${local}_module`;
        out.push(`local ${local} = ${call}`);
        for (const m of names) out.push(`local ${m[1]} = ${local}.${m[2]}`);
    }
    return out.join("\n");
}

/** `local _M = { _VERSION = "x" }` instead of a `_VERSION` local exported at the end. */
function version_in_table(code) {
    const m = /\nlocal _VERSION = ("[^"\n]*")\n+_M\._VERSION = _VERSION\n/.exec(code);
    if (!m) return code;
    return code.replace(m[0], "\n").replace(/^local _M = \{\}$/m, `local _M = { _VERSION = ${m[1]} }`);
}

/** A blank line around each top-level function (with its comment) and before `return _M`. */
function space_functions(code) {
    const lines = code.split("\n");
    const starts = new Set();
    const ends = new Set();
    for (let i = 0; i < lines.length; i++) {
        if (/^(local function |function |local \w+ = function|return _M$)/.test(lines[i])) {
            let s = i;
            while (s > 0 && /^--/.test(lines[s - 1])) s--;
            starts.add(s);
        }
        if (/^end\b/.test(lines[i])) ends.add(i);
    }
    const out = [];
    for (let i = 0; i < lines.length; i++) {
        const prev = out.length > 0 ? out[out.length - 1] : undefined;
        const after_end = i > 0 && ends.has(i - 1);
        if ((starts.has(i) || after_end) && prev !== undefined && prev !== "" && lines[i] !== "") {
            out.push("");
        }
        out.push(lines[i]);
    }
    return out.join("\n");
}

/**
 * The module table after the requires and cached locals at the top (where
 * resty.lock has it), set apart by blank lines; a blank line before each
 * top-level comment that opens a new group of locals.
 */
function lay_out_top(code) {
    const lines = code.split("\n");
    const body = lines.findIndex((l) => !/^--/.test(l));
    if (body > 0 && lines[body] !== "") lines.splice(body, 0, "");
    const at = lines.findIndex((l) => /^local _M = /.test(l));
    if (at < 0) return code;
    const [table] = lines.splice(at, 1);
    let end = at;
    // requires and cached locals (`local now = ngx.now`), not constants
    const cached = (l) => /^local \w+(, \w+)* =( \S|$)/.test(l) && !/ = (-?\d|"|\{|true|false|nil)/.test(l);
    const blank_then_cached = (i) => lines[i] === "" && i + 1 < lines.length && cached(lines[i + 1]);
    while (end < lines.length && (cached(lines[end]) || /^    \S/.test(lines[end]) || blank_then_cached(end))) {
        if (lines[end] === "") lines.splice(end, 1);
        else end++;
    }
    lines.splice(end, 0, "", table, "");
    for (let i = end + 3; i < lines.length; i++) {
        if (/^--/.test(lines[i]) && lines[i - 1] !== "" && !/^--/.test(lines[i - 1])) {
            lines.splice(i, 0, "");
            i++;
        }
    }
    return lines.join("\n");
}

function header(source) {
    return (
        `-- Compiled from ${source} by TypeScriptToLua (make build):\n` +
        "-- change the TypeScript source, not this file.\n\n"
    );
}

// formatCode takes the Config by value (wasm-bindgen frees it): one per call
function stylua_config() {
    const c = stylua.Config.new();
    c.column_width = 120;
    c.indent_type = stylua.IndentType.Spaces;
    c.indent_width = 4;
    c.quote_style = stylua.QuoteStyle.AutoPreferDouble;
    c.call_parentheses = stylua.CallParenType.Always;
    return c;
}

function polish(code, source) {
    if (code.startsWith(TSTL_HEADER)) code = code.slice(TSTL_HEADER.length);
    code = code.replace(/\b____exports\b/g, "_M");
    code = code.replace(/(^|[^\w])____(?=[,\s])/g, "$1_");
    code = fold_requires(code);
    code = version_in_table(code);
    code = lay_out_top(code);
    code = space_functions(code);
    code = stylua.formatCode(code, stylua_config(), undefined, stylua.OutputVerification.None);
    return header(source) + code;
}

function beforeEmit(program, options, emitHost, result) {
    const root = path.dirname(options.configFilePath || path.join(process.cwd(), "tsconfig.json"));
    for (const file of result) {
        if (!file.outputPath.endsWith(".lua") || !file.sourceFiles || file.sourceFiles.length !== 1) continue;
        const source = path.relative(root, file.sourceFiles[0].fileName);
        file.code = polish(file.code, source);
    }
}

module.exports = { visitors, printer, beforeEmit };
