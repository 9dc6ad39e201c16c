#!/usr/bin/env node
// Assembles www/: the page as a self-contained directory for `moq-relay --web www`.
// Run after `tsc -p .` (npm run build does both):
//
//   www/index.html     page/index.html, loading page/app.js
//   www/page/app.js    the compiled page
//   www/src/*.js       the compiled library it imports (../src/index.js)

import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(root, "dist");
const www = path.join(root, "www");

for (const needed of ["page/app.js", "src/index.js"]) {
  if (!existsSync(path.join(dist, needed))) {
    console.error(`build-www: dist/${needed} is missing; run \`tsc -p .\` first`);
    process.exit(1);
  }
}

rmSync(www, { recursive: true, force: true });
mkdirSync(path.join(www, "page"), { recursive: true });
mkdirSync(path.join(www, "src"), { recursive: true });

const from = '<script type="module" src="../dist/page/app.js"></script>';
const html = readFileSync(path.join(root, "page", "index.html"), "utf8");
if (!html.includes(from)) {
  console.error(`build-www: page/index.html no longer contains ${from}`);
  process.exit(1);
}
writeFileSync(path.join(www, "index.html"), html.replace(from, '<script type="module" src="page/app.js"></script>'));

// Only the modules (no declarations, no source maps: the sources are not served).
const strip = (code) => code.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, "\n");
let count = 0;
for (const dir of ["page", "src"]) {
  for (const name of readdirSync(path.join(dist, dir))) {
    if (!name.endsWith(".js")) continue;
    writeFileSync(path.join(www, dir, name), strip(readFileSync(path.join(dist, dir, name), "utf8")));
    count++;
  }
}
console.log(`build-www: www/ holds index.html and ${count} modules`);
