/**
 * The mesh-load warning (issue 13). In a three-way call the monitor really
 * measures: Chromium's getStats gives it one outbound video per peer with a
 * frame rate, and the camera's capture rate. Then strained readings go in
 * through the page's test hook (`switchboard.meshLoad.simulate`), in place
 * of the measured ones, while the call's size and the camera stay live; the
 * page must show the warning as the call's one banner, in words, clear of
 * the call controls (720 × 1280), with no serious axe violation; "Turn off
 * camera" follows the advice and the warning goes at once; turned on again,
 * it comes back; dismissed, it stays away.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import type { Browser, Page } from "playwright-core";
import { ENTER_SAMPLES } from "../src/rtc/meshLoad";
import { axeSerious, describe } from "./support/axe";
import { RESULTS_DIR, startStack, type Stack } from "./support/stack";
import { joinViaLink, launch, participant, stepper, until, waitForRemotes, type Participant } from "./support/browser";

const PORTRAIT = { width: 720, height: 1280 };
const STRAINED = '[data-testid="connection-banner"][data-state="strained"]';
/** Two sampling intervals of slack around what a step waits for. */
const SAMPLE_SLACK_MS = 4_000;

let stack: Stack;
let browser: Browser;
const people: Participant[] = [];

before(async () => {
  mkdirSync(RESULTS_DIR, { recursive: true });
  stack = await startStack();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

const step = stepper(people, () => stack.logs, { dir: RESULTS_DIR, tag: "mesh-load-failure" });

function overlaps(a: { x: number; y: number; width: number; height: number }, b: typeof a): boolean {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

/** Samples the page's monitor has judged so far. */
function samples(page: Page): Promise<number> {
  return page.evaluate(() => window.switchboard?.meshLoad.samples() ?? 0);
}

test("a device that cannot keep up with the mesh is told so, in words, without covering the controls", { timeout: 240_000 }, async () => {
  const alice = await participant(browser, "Alice", { viewport: PORTRAIT });
  const bob = await participant(browser, "Bob");
  const carol = await participant(browser, "Carol");
  const ps = [alice, bob, carol];
  people.push(...ps);
  const room = `${stack.edge}/room/?r=mesh-load-${Date.now().toString(36)}`;
  const page = alice.page;
  const controls = page.locator('nav[aria-label="Call controls"]');

  await step("three join and connect", async () => {
    for (const p of ps) await joinViaLink(p, room);
    await Promise.all(ps.map((p) => waitForRemotes(p, 2)));
  });

  await step("the monitor measures the real call: two outbound videos with frame rates, and the capture rate", async () => {
    const sample = await until(
      "a sample past warm-up",
      () =>
        page.evaluate(() => {
          const s = window.switchboard?.meshLoad.sample();
          return s && s.streams.length === 2 && s.streams.every((v) => (v.fps ?? 0) > 0) && (s.sourceFps ?? 0) > 0 ? s : undefined;
        }),
      { timeout: 45_000, interval: 500 },
    );
    assert.equal(sample.peers, 2);
    assert.equal(sample.video, "camera");
    console.log(`alice measured: ${JSON.stringify(sample)}`);
  });

  await step("strained readings: after a few samples, one banner in words, 'Connected', clear of the controls", async () => {
    await page.evaluate(() =>
      window.switchboard?.meshLoad.simulate({
        sourceFps: 30,
        streams: [
          { fps: 6, limitation: "cpu" },
          { fps: 7, limitation: "cpu" },
        ],
      }),
    );
    await page.locator(STRAINED).waitFor({ timeout: ENTER_SAMPLES * 2_000 + SAMPLE_SLACK_MS });
    await page.screenshot({ path: `${RESULTS_DIR}/mesh-load-alice.png` });
    const banners = page.getByTestId("connection-banner");
    assert.equal(await banners.count(), 1);
    const words = await page.locator(`${STRAINED} .banner-text`).innerText();
    assert.equal(words, "This device is struggling to send your video to 2 people. Turning off your camera may help.");
    assert.equal((await page.getByTestId("signal-status").innerText()).trim(), "Connected");

    const box = await banners.boundingBox();
    assert.ok(box);
    const buttons = controls.getByRole("button");
    const n = await buttons.count();
    assert.ok(n >= 5, `the call controls are there (${n})`);
    for (let i = 0; i < n; i += 1) {
      const cb = await buttons.nth(i).boundingBox();
      const label = (await buttons.nth(i).innerText()).trim();
      assert.ok(cb, `control "${label}" is laid out`);
      assert.ok(!overlaps(box, cb), `the banner ${JSON.stringify(box)} covers "${label}" ${JSON.stringify(cb)}`);
      assert.ok(cb.y + cb.height <= PORTRAIT.height, `control "${label}" is on screen`);
    }
    const bad = await axeSerious(page);
    assert.deepEqual(bad, [], describe(bad));
  });

  await step("'Turn off camera' follows the advice: the camera goes off and so does the warning", async () => {
    await page.locator(STRAINED).getByRole("button", { name: "Turn off camera" }).click();
    await controls.getByRole("button", { name: "Start video" }).waitFor({ timeout: 5_000 });
    await page.locator(STRAINED).waitFor({ state: "detached", timeout: SAMPLE_SLACK_MS });
  });

  await step("camera on again under the same strain: the warning comes back", async () => {
    await controls.getByRole("button", { name: "Start video" }).click();
    await page.locator(STRAINED).waitFor({ timeout: ENTER_SAMPLES * 2_000 + SAMPLE_SLACK_MS });
  });

  await step("dismissed, it stays away while the call does not grow", async () => {
    await page.locator(STRAINED).getByRole("button", { name: "Dismiss" }).click();
    await page.locator(STRAINED).waitFor({ state: "detached", timeout: 2_000 });
    const from = await samples(page);
    await page.waitForFunction((n) => (window.switchboard?.meshLoad.samples() ?? 0) >= n, from + ENTER_SAMPLES, {
      timeout: ENTER_SAMPLES * 2_000 + SAMPLE_SLACK_MS,
      polling: 250,
    });
    assert.equal(await page.locator(STRAINED).count(), 0);
  });

  await page.evaluate(() => window.switchboard?.meshLoad.simulate(null));
  await Promise.all(ps.map((p) => p.context.close()));
});
