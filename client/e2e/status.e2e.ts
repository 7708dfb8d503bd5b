/**
 * One consistent status model (issue 13): in a call there is one connection
 * indicator and at most one banner, worded for a person, never over the
 * call controls (720 × 1280 and 1280 × 720), agreeing with the indicator,
 * and gone within a second of recovery. Joins and leaves are announced
 * politely to screen readers. Chat history survives the outage.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import type { Browser, Page } from "playwright-core";
import { RESULTS_DIR, startStack, type Stack } from "./support/stack";
import { joinViaLink, launch, participant, stepper, waitForRemotes, type Participant } from "./support/browser";

/** From recovery (network back, server READY) to the warning gone. */
const CLEAR_WITHIN_MS = 1000;

const PORTRAIT = { width: 720, height: 1280 };
const LANDSCAPE = { width: 1280, height: 720 };

/** A banner that says something is wrong (not "Reconnected."). */
const TROUBLE =
  '[data-testid="offline-banner"], [data-testid="connection-banner"][data-state="offline"], [data-testid="connection-banner"][data-state="reconnecting"]';

let stack: Stack;
let browser: Browser;
const people: Participant[] = [];
const serverLogs: string[] = [];

before(async () => {
  mkdirSync(RESULTS_DIR, { recursive: true });
  stack = await startStack();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

const step = stepper(people, () => [...serverLogs, ...stack.logs], { dir: RESULTS_DIR, tag: "status-failure" });

interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

function overlaps(a: Box, b: Box): boolean {
  return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
}

/**
 * What a person sees while something is wrong: exactly one banner, in words
 * (no error codes, no attempt counters outside "Details"), an indicator
 * that does not say "Connected", and every call control on screen and
 * clear of the banner. Saves a screenshot of the state as an artifact.
 */
async function checkTroubleShown(p: Participant, tag: string): Promise<void> {
  const page = p.page;
  await page.locator(TROUBLE).first().waitFor({ timeout: 30_000 });
  const vp = page.viewportSize();
  await page.screenshot({ path: `${RESULTS_DIR}/status-${tag}-${p.name.toLowerCase()}-${vp?.width}x${vp?.height}.png` });

  const banners = page.locator('[data-testid="offline-banner"], [data-testid="connection-banner"]');
  assert.equal(await banners.count(), 1, `${p.name} (${tag}): one banner, not ${await banners.count()}: ${await banners.allInnerTexts()}`);
  // The visible words: a closed <details> shows only its summary.
  const words = await banners.first().innerText();
  assert.doesNotMatch(words, /\b[a-z]+_[a-z_]+\b|\b4\d{3}\b|attempt \d|unauthenticated|:\s/i, `${p.name} (${tag}): no error codes in "${words}"`);

  const pill = await page.getByTestId("signal-status").innerText();
  assert.doesNotMatch(pill.trim(), /^connected$/i, `${p.name} (${tag}): the indicator says "${pill}" beside "${words}"`);

  // Nothing is drawn over the banner or the controls (a panel, an overlay):
  // the topmost element at each one's centre is inside it.
  const hidden = await page.evaluate(() => {
    const out: string[] = [];
    const els = [
      ...document.querySelectorAll('[data-testid="offline-banner"], [data-testid="connection-banner"], nav[aria-label="Call controls"] button'),
    ];
    for (const el of els) {
      const r = el.getBoundingClientRect();
      const top = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
      if (!top || !el.contains(top)) out.push(`${(el as HTMLElement).innerText.split("\n")[0]} under ${top?.tagName ?? "nothing"}.${top?.className ?? ""}`);
    }
    return out;
  });
  assert.deepEqual(hidden, [], `${p.name} (${tag}): covered: ${hidden.join("; ")}`);

  const box = await banners.first().boundingBox();
  assert.ok(box && vp, "the banner has a box");
  const controls = page.locator('nav[aria-label="Call controls"] button');
  const n = await controls.count();
  assert.ok(n >= 5, `${p.name}: the call controls are there (${n})`);
  for (let i = 0; i < n; i += 1) {
    const c = controls.nth(i);
    const cb = await c.boundingBox();
    const label = (await c.innerText()).trim();
    assert.ok(cb, `${p.name} (${tag}): control "${label}" is laid out`);
    assert.ok(!overlaps(box, cb), `${p.name} (${tag}): the banner ${JSON.stringify(box)} covers "${label}" ${JSON.stringify(cb)}`);
    assert.ok(
      cb.x >= 0 && cb.y >= 0 && cb.x + cb.width <= vp.width && cb.y + cb.height <= vp.height,
      `${p.name} (${tag}): control "${label}" ${JSON.stringify(cb)} is off the ${vp.width}x${vp.height} screen`,
    );
  }
}

/** Waits (deadline CLEAR_WITHIN_MS from `since`) until no trouble is shown. */
async function checkClearsFrom(page: Page, who: string, since: number): Promise<number> {
  const left = Math.max(1, CLEAR_WITHIN_MS - (Date.now() - since));
  await page
    .waitForFunction((sel) => document.querySelector(sel) === null, TROUBLE, { timeout: left, polling: 50 })
    .catch(async (err: unknown) => {
      const shown = await page.locator(TROUBLE).allInnerTexts().catch(() => []);
      throw new Error(`${who}: still showing ${JSON.stringify(shown)} ${Date.now() - since} ms after recovery (${String(err)})`);
    });
  return Date.now() - since;
}

async function chatSays(p: Participant, text: string): Promise<void> {
  await p.page.locator('[data-testid="chat-message"]', { hasText: text }).waitFor({ timeout: 15_000 });
}

async function openChat(p: Participant): Promise<void> {
  if ((await p.page.getByTestId("chat-log").count()) === 0) {
    await p.page.locator('nav[aria-label="Call controls"]').getByRole("button", { name: "Chat" }).click();
  }
  await p.page.getByTestId("chat-log").waitFor();
}

test("joins and leaves are announced politely", { timeout: 120_000 }, async () => {
  const ps = await Promise.all(["Ann", "Ben"].map((n) => participant(browser, n)));
  people.push(...ps);
  const [ann, ben] = ps as [Participant, Participant];
  const room = `${stack.edge}/room/?r=announce-${Date.now().toString(36)}`;
  await joinViaLink(ann, room);
  await joinViaLink(ben, room);
  const live = ann.page.locator('[aria-live="polite"]', { hasText: "Ben joined" });
  await step("ann's page announces that ben joined", () => live.waitFor({ state: "attached", timeout: 15_000 }));
  await step("ben's page does not announce ann (she was there first)", async () => {
    await waitForRemotes(ben, 1);
    assert.equal(await ben.page.locator('[aria-live="polite"]', { hasText: "Ann joined" }).count(), 0);
  });
  await ben.page.locator('nav[aria-label="Call controls"]').getByRole("button", { name: "Leave", exact: true }).click();
  await step("ann's page announces that ben left", () =>
    ann.page.locator('[aria-live="polite"]', { hasText: "Ben left" }).waitFor({ state: "attached", timeout: 15_000 }),
  );
  await Promise.all(ps.map((p) => p.context.close()));
});

test("offline and a server restart: one banner, clear of the controls, gone within a second", { timeout: 240_000 }, async () => {
  const alice = await participant(browser, "Alice", { viewport: PORTRAIT });
  const bob = await participant(browser, "Bob", { viewport: LANDSCAPE });
  const ps = [alice, bob];
  people.push(...ps);
  const room = `${stack.edge}/room/?r=status-${Date.now().toString(36)}`;

  await step("both join, see each other and chat", async () => {
    for (const p of ps) await joinViaLink(p, room);
    await Promise.all(ps.map((p) => waitForRemotes(p, 1)));
    for (const p of ps) await openChat(p);
    // The chat's data channel opens after ICE: wait until Send is possible.
    const input = bob.page.getByRole("textbox", { name: "Message" });
    await input.fill("before the outage");
    await bob.page.waitForFunction(
      () => !(document.querySelector('button[aria-label="Send message"]') as HTMLButtonElement | null)?.disabled,
      undefined,
      { timeout: 15_000 },
    );
    await input.press("Enter");
    await chatSays(alice, "before the outage");
  });

  for (const p of ps) {
    await step(`${p.name} offline: one banner in words, clear of the controls`, async () => {
      await p.context.setOffline(true);
      await checkTroubleShown(p, "offline");
    });
    await step(`${p.name} back online: the banner goes within a second`, async () => {
      await p.context.setOffline(false);
      const took = await checkClearsFrom(p.page, p.name, Date.now());
      console.log(`${p.name}: offline banner cleared ${took} ms after going online`);
    });
  }

  const edgeAddr = new URL(stack.edge).host;
  serverLogs.push(...stack.logs, "---- killed ----");
  await stack.kill();
  await step("server gone: each page shows one banner in words, clear of the controls", async () => {
    for (const p of ps) await checkTroubleShown(p, "server-down");
  });
  // Long enough for the reconnect backoff to grow past a second.
  await step("the pages keep trying", () =>
    Promise.all(ps.map((p) => p.page.waitForFunction(() => (window.switchboard?.call.snapshot.attempt ?? 0) >= 4, undefined, { timeout: 30_000 }))),
  );
  stack = await startStack({ edgeListen: edgeAddr });
  const back = Date.now();
  await step("server back: the banners go within a second", async () => {
    const took = await Promise.all(ps.map((p) => checkClearsFrom(p.page, p.name, back)));
    console.log(`banners cleared ${took.join(", ")} ms after the server was READY`);
  });

  await step("the chat history is kept, and chat works again", async () => {
    await chatSays(alice, "before the outage");
    await chatSays(bob, "before the outage");
    const input = alice.page.getByRole("textbox", { name: "Message" });
    await input.fill("after the outage");
    await alice.page.waitForFunction(
      () => !(document.querySelector('button[aria-label="Send message"]') as HTMLButtonElement | null)?.disabled,
      undefined,
      { timeout: 15_000 },
    );
    await input.press("Enter");
    await chatSays(bob, "after the outage");
  });
  await Promise.all(ps.map((p) => p.context.close()));
});
