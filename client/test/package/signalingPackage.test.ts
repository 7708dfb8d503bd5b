/**
 * `@switchboard/signaling` is a real npm package: built from a copy of its
 * directory (with the proto beside it, as in the repo), packed with
 * `npm pack`, installed from that tarball into a scratch project that has
 * only `@bufbuild/protobuf`, then imported by Node and type-checked by tsc.
 * Nothing outside the package's directory is needed once it is packed.
 *
 * Offline: the build's tools come from this app's node_modules, and
 * `@bufbuild/protobuf` is packed from there too, so `npm install --offline`
 * never asks a registry.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";

const CLIENT = resolve(import.meta.dirname, "../..");
const PACKAGE = join(CLIENT, "src/signaling");
const PROTO = resolve(CLIENT, "../proto");
const TSC = join(CLIENT, "node_modules/typescript/bin/tsc");
/** Built by `npm run gen` / `npm run build`, never copied into the build. */
const NOT_SOURCES = new Set(["gen", "dist", "node_modules"]);

let work: string;
let installed: string;
let packedFiles: string[];

interface PackResult {
  filename: string;
  files: { path: string }[];
}

function run(cmd: string, args: string[], cwd: string): string {
  try {
    return execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(" ")} (in ${cwd}) failed: ${e.message}\n${e.stdout ?? ""}\n${e.stderr ?? ""}`);
  }
}

/** `npm pack --json` prints its lifecycle scripts' output first. */
function packJson(stdout: string): PackResult {
  const start = stdout.indexOf("[\n");
  assert.ok(start >= 0, `npm pack printed no JSON:\n${stdout}`);
  const [result] = JSON.parse(stdout.slice(start)) as PackResult[];
  assert.ok(result);
  return result;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

before(() => {
  work = mkdtempSync(join(tmpdir(), "sb-signaling-pkg-"));
  // The repo's layout, reduced to the package and the schema.
  const pkg = join(work, "client/src/signaling");
  cpSync(PACKAGE, pkg, { recursive: true, filter: (src) => !NOT_SOURCES.has(relative(PACKAGE, src).split("/")[0] ?? "") });
  cpSync(PROTO, join(work, "proto"), { recursive: true });
  // buf, protoc-gen-es and tsc, as npm finds them from any package below client/.
  symlinkSync(join(CLIENT, "node_modules"), join(work, "client/node_modules"), "dir");

  const tarballs = join(work, "tarballs");
  mkdirSync(tarballs);
  // prepack builds: generates the proto types and compiles to dist/.
  const packed = packJson(run("npm", ["pack", "--json", "--pack-destination", tarballs], pkg));
  packedFiles = packed.files.map((f) => f.path);
  const protobuf = packJson(
    run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", tarballs, join(CLIENT, "node_modules/@bufbuild/protobuf")], work),
  );

  const consumer = join(work, "consumer");
  mkdirSync(consumer);
  writeFileSync(
    join(consumer, "package.json"),
    JSON.stringify({
      name: "consumer",
      private: true,
      type: "module",
      dependencies: {
        "@switchboard/signaling": `file:../tarballs/${packed.filename}`,
        "@bufbuild/protobuf": `file:../tarballs/${protobuf.filename}`,
      },
    }),
  );
  run("npm", ["install", "--offline", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], consumer);
  cpSync(join(import.meta.dirname, "consumer"), consumer, { recursive: true });
  installed = consumer;
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

test("the tarball holds the compiled package and nothing else", () => {
  const outside = packedFiles.filter((f) => !(f === "package.json" || f === "README.md" || f.startsWith("dist/")));
  assert.deepEqual(outside, [], "only package.json, README.md and dist/");
  const sources = packedFiles.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"));
  assert.deepEqual(sources, [], "no TypeScript sources");
  for (const f of ["README.md", "dist/index.js", "dist/index.d.ts", "dist/proto.js", "dist/proto.d.ts", "dist/gen/switchboard/v1/client_pb.js"]) {
    assert.ok(packedFiles.includes(f), `${f} is packed`);
  }
});

test("the installed package imports only its own files and @bufbuild/protobuf", () => {
  const root = join(installed, "node_modules/@switchboard/signaling");
  const found: string[] = [];
  for (const file of filesUnder(join(root, "dist"))) {
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)) {
      const spec = m[1] ?? "";
      if (spec.startsWith(".")) {
        const target = resolve(file, "..", spec);
        const sibling = [target, target.replace(/\.ts$/, ".d.ts")].some((t) => t.startsWith(root) && statSync(t, { throwIfNoEntry: false }));
        if (!sibling) found.push(`${relative(root, file)}: ${spec}`);
      } else if (!/^@bufbuild\/protobuf(\/|$)/.test(spec)) {
        found.push(`${relative(root, file)}: ${spec}`);
      }
    }
  }
  assert.deepEqual(found, []);
  const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as Record<string, unknown>;
  assert.deepEqual(manifest.dependencies ?? {}, {}, "no runtime dependency but the peer");
  assert.deepEqual(Object.keys(manifest.peerDependencies as object), ["@bufbuild/protobuf"]);
});

test("Node imports it and a session runs: join, offer and candidate, events, resume, leave", () => {
  const out = JSON.parse(run(process.execPath, ["smoke.mjs"], installed)) as {
    frames: { case: string; seq: string; token?: string; to?: string; kind?: string; sessionId?: string; lastSeq?: string }[];
    heard: string[];
    state: string;
  };
  assert.deepEqual(
    out.frames.map((f) => f.case),
    ["join", "signal", "signal", "resume", "leave"],
  );
  const [join0, offer, candidate, resume] = out.frames;
  assert.equal(join0?.token, "token-1");
  assert.deepEqual([offer?.to, offer?.kind, offer?.seq], ["bob", "description", "1"]);
  assert.deepEqual([candidate?.kind, candidate?.seq], ["candidate", "2"]);
  assert.deepEqual([resume?.sessionId, resume?.lastSeq], ["session-1", "3"]);
  assert.deepEqual(out.heard, [
    "joined session-1 rejoin=false",
    "participantJoined bob",
    "signal bob description",
    "resumed session-1 complete=true",
    "stopped 1000",
  ]);
  assert.equal(out.state, "closed");
});

test("its declarations type-check a consumer and the README's examples (NodeNext and bundler resolution, skipLibCheck off)", () => {
  // The README as packed: its TypeScript blocks, in order, as one module.
  const readme = readFileSync(join(installed, "node_modules/@switchboard/signaling/README.md"), "utf8");
  const blocks = [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
  assert.ok(blocks.length >= 2, "the README has its usage examples");
  writeFileSync(join(installed, "readme.ts"), `${blocks.join("\n")}\nexport {};\n`);
  run(process.execPath, [TSC, "-p", "tsconfig.consumer.json"], installed);
  run(process.execPath, [TSC, "-p", "tsconfig.consumer.json", "--module", "ESNext", "--moduleResolution", "Bundler"], installed);
});
