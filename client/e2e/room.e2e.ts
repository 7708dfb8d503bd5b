/**
 * Three participants join one room through the UI against a real
 * `switchboard all`: everyone sees two remote videos that decode, chat goes
 * peer to peer, a mute shows up at the others, a screen share reaches them,
 * and a leaver disappears.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { RESULTS_DIR, startStack, type Stack } from "./support/stack";
import {
  inboundVideo,
  joinViaLink,
  launch,
  participant,
  until,
  waitForDecodedVideo,
  waitForRemotes,
  type Participant,
  stepper,
} from "./support/browser";

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

/** Runs `fn`; on failure adds the browsers' and the server's logs. */
const step = stepper(people, () => stack.logs);

test("three participants: video, chat, mute, screen share and leave", { timeout: 240_000 }, async () => {
  const [alice, bob, carol] = await Promise.all(["Alice", "Bob", "Carol"].map((n) => participant(browser, n)));
  assert.ok(alice && bob && carol);
  people.push(alice, bob, carol);

  // Alice signs in and creates a room from the lobby.
  const roomUrl = await step("alice creates a room", async () => {
    await alice.page.goto(stack.edge + "/");
    await alice.page.getByLabel("Your name").fill("Alice");
    await alice.page.getByRole("button", { name: "Continue" }).click();
    await alice.page.getByRole("button", { name: "New room" }).click();
    await alice.page.waitForURL(/\/room\/\?r=[a-z0-9-]+$/, { timeout: 15_000 });
    const url = alice.page.url();
    // The pre-join screen offers the same link to share.
    await alice.page.waitForFunction(
      (u) => document.querySelector('[data-testid="invite-link"]')?.textContent === u,
      url,
      { timeout: 5_000 },
    );
    await alice.page.getByRole("button", { name: "Join now" }).click();
    await alice.page.locator('[data-testid="call"][data-status="joined"]').waitFor({ timeout: 30_000 });
    return url;
  });

  // Bob and Carol open the shared link.
  await step("bob and carol join by link", () => Promise.all([joinViaLink(bob, roomUrl), joinViaLink(carol, roomUrl)]));

  await step("everyone sees two connected remote tiles", () => Promise.all(people.map((p) => waitForRemotes(p, 2))));

  const decoded = await step("video decodes at every participant", () =>
    Promise.all(people.map((p) => waitForDecodedVideo(p, 2, 5))),
  );
  for (const [i, frames] of decoded.entries()) {
    assert.equal(Object.keys(frames).length, 2, `${people[i]?.name} decodes two remote videos`);
    for (const n of Object.values(frames)) assert.ok(n >= 5, `${people[i]?.name}: ${n} frames decoded`);
  }

  // Each tile shows the right remote name.
  const names = await alice.page.locator('[data-testid="tile"][data-local="false"] .tile-name').allTextContents();
  assert.deepEqual(names.sort(), ["Bob", "Carol"]);

  await step("chat over the data channel reaches the other two", async () => {
    const input = alice.page.getByRole("textbox", { name: "Message" });
    await input.fill("Hello from Alice");
    await alice.page.waitForFunction(
      () => !(document.querySelector('button[aria-label="Send message"]') as HTMLButtonElement | null)?.disabled,
      undefined,
      { timeout: 20_000 },
    );
    await input.press("Enter");
    for (const p of [bob, carol]) {
      await p.page
        .locator('[data-testid="chat-message"]', { hasText: "Hello from Alice" })
        .waitFor({ timeout: 15_000 });
      const from = await p.page.locator('[data-testid="chat-message"] .chat-from').first().textContent();
      assert.equal(from, "Alice");
    }
    await bob.page.getByRole("textbox", { name: "Message" }).fill("Hi Alice, Bob here");
    await bob.page.getByRole("textbox", { name: "Message" }).press("Enter");
    for (const p of [alice, carol]) {
      await p.page.locator('[data-testid="chat-message"]', { hasText: "Hi Alice, Bob here" }).waitFor({ timeout: 15_000 });
    }
  });

  const bobId = await bob.page.evaluate(() => window.switchboard?.call.snapshot.selfId ?? "");
  const carolId = await carol.page.evaluate(() => window.switchboard?.call.snapshot.selfId ?? "");
  assert.ok(bobId && carolId);

  await step("bob mutes his microphone; the others see it", async () => {
    await bob.page.getByRole("button", { name: "Mute", exact: true }).click();
    await bob.page.getByRole("button", { name: "Unmute", exact: true }).waitFor();
    for (const p of [alice, carol]) {
      await p.page.locator(`[data-testid="tile"][data-peer-id="${bobId}"][data-audio="off"]`).waitFor({ timeout: 15_000 });
    }
  });

  await step("carol turns her camera off; the others see it", async () => {
    await carol.page.keyboard.press("Control+E");
    await carol.page.getByRole("button", { name: "Start video", exact: true }).waitFor();
    for (const p of [alice, bob]) {
      await p.page.locator(`[data-testid="tile"][data-peer-id="${carolId}"][data-video="off"]`).waitFor({ timeout: 15_000 });
    }
  });

  // Screenshots of every participant's view.
  for (const p of people) {
    await p.page.screenshot({ path: join(RESULTS_DIR, `room-${p.name.toLowerCase()}.png`) });
  }
  copyFileSync(join(RESULTS_DIR, "room-alice.png"), join(RESULTS_DIR, "room.png"));

  const aliceId = await alice.page.evaluate(() => window.switchboard?.call.snapshot.selfId ?? "");
  await step("alice shares her screen; the others see her presenting, video keeps decoding", async () => {
    await alice.page.getByRole("button", { name: "Share", exact: true }).click();
    await alice.page.getByRole("button", { name: "Stop share", exact: true }).waitFor({ timeout: 10_000 });
    for (const p of [bob, carol]) {
      await p.page
        .locator(`[data-testid="tile"][data-peer-id="${aliceId}"] .badge`, { hasText: "Presenting" })
        .waitFor({ timeout: 15_000 });
    }
    const before = (await waitForDecodedVideo(bob, 2))[aliceId] ?? 0;
    await until("bob decoding alice's screen", async () =>
      ((await inboundVideo(bob))[aliceId]?.framesDecoded ?? 0) > before + 5 ? true : undefined,
    );
    await alice.page.getByRole("button", { name: "Stop share", exact: true }).click();
    await bob.page
      .locator(`[data-testid="tile"][data-peer-id="${aliceId}"] .badge`, { hasText: "Presenting" })
      .waitFor({ state: "detached", timeout: 15_000 });
  });

  await step("carol leaves; she disappears from the others' grids", async () => {
    await carol.page.getByRole("button", { name: "Leave", exact: true }).click();
    await carol.page.getByTestId("ended").waitFor({ timeout: 10_000 });
    for (const p of [alice, bob]) {
      await p.page.waitForFunction(
        (id) =>
          !document.querySelector(`[data-testid="tile"][data-peer-id="${id}"]`) &&
          document.querySelectorAll('[data-testid="tile"][data-local="false"]').length === 1,
        carolId,
        { timeout: 15_000, polling: 250 },
      );
    }
  });
  const remaining = await alice.page.locator('[data-testid="tile"][data-local="false"] .tile-name').allTextContents();
  assert.deepEqual(remaining, ["Bob"]);
});
