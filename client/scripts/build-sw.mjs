// After `next build`: writes out/sw.js from sw/sw.template.js with the list
// of files in the static export to precache and a version derived from
// their contents (a new build → a new cache, old caches are deleted).
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join, relative, sep } from "node:path";

const OUT = "out";
/** Skip big or useless files: source maps, the worker itself. */
const SKIP = [/\.map$/, /^sw\.js$/, /\.DS_Store$/];
const MAX_BYTES = 2 * 1024 * 1024;

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

const hash = createHash("sha256");
const urls = [];
for (const path of walk(OUT).sort()) {
  const rel = relative(OUT, path).split(sep).join("/");
  if (SKIP.some((re) => re.test(rel))) continue;
  const data = readFileSync(path);
  if (data.length > MAX_BYTES) continue;
  hash.update(rel).update(data);
  // Pages are requested by their directory URL (trailingSlash).
  if (rel === "index.html") urls.push("/");
  else if (rel.endsWith("/index.html")) urls.push(`/${rel.slice(0, -"index.html".length)}`);
  else urls.push(`/${rel}`);
}
const version = hash.digest("hex").slice(0, 12);
const sw = readFileSync("sw/sw.template.js", "utf8")
  .replace("__VERSION__", version)
  .replace("__PRECACHE__", JSON.stringify(urls, null, 2));
writeFileSync(join(OUT, "sw.js"), sw);
console.log(`out/sw.js: version ${version}, ${urls.length} files precached`);
