/**
 * PWA: the manifest is linked and valid, the service worker registers and
 * precaches the app shell, and with the server stopped the app still opens
 * (lobby and room page) and says it is offline.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { RESULTS_DIR, startStack, type Stack } from "./support/stack";
import { launch, participant } from "./support/browser";

let stack: Stack;
let browser: Browser;

before(async () => {
  mkdirSync(RESULTS_DIR, { recursive: true });
  stack = await startStack();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

interface Manifest {
  name: string;
  short_name: string;
  start_url: string;
  display: string;
  icons: { src: string; sizes: string; type: string; purpose?: string }[];
}

test("manifest, service worker, and the app shell offline", { timeout: 120_000 }, async () => {
  const p = await participant(browser, "Offline");
  const { page } = p;
  await page.goto(stack.edge + "/");
  await page.getByRole("heading", { name: "Video calls that just connect." }).waitFor();

  // The manifest is linked from the page and describes an installable app.
  const href = await page.locator('link[rel="manifest"]').getAttribute("href");
  assert.ok(href, "page links a manifest");
  const res = await page.request.get(new URL(href, stack.edge).toString());
  assert.equal(res.status(), 200);
  assert.match(res.headers()["content-type"] ?? "", /json/);
  const manifest = (await res.json()) as Manifest;
  assert.equal(manifest.name, "Switchboard");
  assert.equal(manifest.display, "standalone");
  assert.equal(manifest.start_url, "/");
  const sizes = manifest.icons.map((i) => i.sizes);
  assert.ok(sizes.includes("192x192") && sizes.includes("512x512"), `icons: ${sizes.join(", ")}`);
  assert.ok(manifest.icons.some((i) => i.purpose === "maskable"));
  for (const icon of manifest.icons) {
    const r = await page.request.get(new URL(icon.src, stack.edge).toString());
    assert.equal(r.status(), 200, `icon ${icon.src}`);
    assert.equal(r.headers()["content-type"], icon.type, `icon ${icon.src} type`);
  }

  // The service worker registers, activates and controls the page.
  const sw = await page.evaluate(async () => {
    const reg = await navigator.serviceWorker.ready;
    return { scope: reg.scope, script: reg.active?.scriptURL ?? "" };
  });
  assert.equal(sw.scope, stack.edge + "/");
  assert.equal(sw.script, stack.edge + "/sw.js");
  await page.reload();
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, undefined, { timeout: 10_000 });
  const cached = await page.evaluate(async () => {
    const keys = await caches.keys();
    const shell = keys.find((k) => k.startsWith("switchboard-shell-"));
    if (!shell) return [];
    const cache = await caches.open(shell);
    return (await cache.keys()).map((r) => new URL(r.url).pathname);
  });
  for (const path of ["/", "/room/", "/manifest.webmanifest", "/icons/icon-192.png"]) {
    assert.ok(cached.includes(path), `${path} is precached (cache has ${cached.length} entries)`);
  }
  assert.ok(cached.some((u) => u.startsWith("/_next/static/")), "static assets are precached");
  assert.equal(await page.getByTestId("offline-banner").count(), 0, "online: no offline banner");

  // Stop the server: the app shell still opens, and says it is offline.
  await stack.stop();
  await page.reload();
  await page.getByRole("heading", { name: "Video calls that just connect." }).waitFor({ timeout: 10_000 });
  await page.getByTestId("offline-banner").waitFor({ timeout: 10_000 });
  assert.match((await page.getByTestId("offline-banner").textContent()) ?? "", /offline/i);

  // A room link opens offline too (the room page is part of the shell).
  await page.goto(stack.edge + "/room/?r=offline-check");
  await page.getByRole("heading", { name: /Ready to join/ }).waitFor({ timeout: 10_000 });
  await page.getByTestId("offline-banner").waitFor({ timeout: 10_000 });
  await page.screenshot({ path: join(RESULTS_DIR, "offline.png") });
});
