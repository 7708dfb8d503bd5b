/**
 * Resume: one participant's WebSocket is cut mid-call (no Leave). The client
 * reconnects with Resume{sessionId, resumeToken, lastSeq} and continues the
 * same session: no fresh Join, no participantLeft at the other side, the
 * same RTCPeerConnections (no renegotiation from scratch), video keeps
 * flowing and signaling works afterwards.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
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

const step = stepper(people, () => stack.logs);

type Stats = NonNullable<Awaited<ReturnType<typeof statsOf>>>;
function statsOf(p: Participant) {
  return p.page.evaluate(() => window.switchboard?.stats());
}

test("a dropped WebSocket resumes the session without renegotiating", { timeout: 180_000 }, async () => {
  const [alice, bob] = await Promise.all(["Alice", "Bob"].map((n) => participant(browser, n)));
  assert.ok(alice && bob);
  people.push(alice, bob);
  const room = `${stack.edge}/room/?r=resume-${Date.now().toString(36)}`;

  await step("both join and exchange video", async () => {
    await joinViaLink(alice, room);
    await joinViaLink(bob, room);
    await Promise.all([waitForRemotes(alice, 1), waitForRemotes(bob, 1)]);
    await Promise.all([waitForDecodedVideo(alice, 1, 5), waitForDecodedVideo(bob, 1, 5)]);
  });

  const bobBefore = (await statsOf(bob)) as Stats;
  const aliceBefore = (await statsOf(alice)) as Stats;
  const aliceId = Object.keys(bobBefore.negotiation)[0] ?? "";
  const bobId = Object.keys(aliceBefore.negotiation)[0] ?? "";
  assert.ok(aliceId && bobId);
  assert.equal(bobBefore.signaling.joins, 1);
  assert.equal(bobBefore.signaling.resumes, 0);

  // Bob's socket is cut (a network drop: the client sends no Leave).
  await bob.page.evaluate(() => window.switchboard?.dropConnection());

  await step("bob reconnects (resumed, or fell back to a fresh Join)", async () => {
    await bob.page
      .locator('[data-testid="connection-banner"][data-state="resumed"], [data-testid="connection-banner"][data-state="rejoined"]')
      .first()
      .waitFor({ timeout: 30_000 });
    await bob.page.locator('[data-testid="call"][data-status="joined"]').waitFor({ timeout: 5_000 });
  });
  const outcome = await bob.page.getByTestId("connection-banner").getAttribute("data-state");
  if (outcome !== "resumed") {
    // Say exactly what the server answered to the Resume.
    const i = bob.console.findIndex((l) => l.includes('TX {"id"') && l.includes('"resume":'));
    const answer = i >= 0 ? bob.console.slice(i, i + 3).join("\n") : "(no Resume was sent)";
    assert.fail(`the session was not resumed (client fell back to a fresh Join); the exchange was:\n${answer}`);
  }

  const bobAfter = (await statsOf(bob)) as Stats;
  assert.equal(bobAfter.signaling.resumes, 1, "resumed once");
  assert.equal(bobAfter.signaling.joins, 1, "no fresh Join");
  assert.equal(bobAfter.signaling.resumeFallbacks, 0, "no fallback to Join");
  assert.equal(bobAfter.signaling.connects, 2, "exactly one reconnect");
  assert.deepEqual(
    bobAfter.negotiation[aliceId],
    bobBefore.negotiation[aliceId],
    "bob kept the same peer connection to alice",
  );
  const aliceAfter = (await statsOf(alice)) as Stats;
  assert.deepEqual(
    aliceAfter.negotiation[bobId],
    aliceBefore.negotiation[bobId],
    "alice kept the same peer connection to bob (no participantLeft/Joined)",
  );

  await step("media keeps flowing both ways", async () => {
    const base = (await inboundVideo(alice))[bobId]?.framesDecoded ?? 0;
    await until("alice decoding more frames from bob", async () =>
      ((await inboundVideo(alice))[bobId]?.framesDecoded ?? 0) > base + 10 ? true : undefined,
    );
  });

  await step("signaling works after the resume (presence from bob reaches alice)", async () => {
    await bob.page.getByRole("button", { name: "Mute", exact: true }).click();
    await alice.page.locator(`[data-testid="tile"][data-peer-id="${bobId}"][data-audio="off"]`).waitFor({ timeout: 15_000 });
  });

  await step("and towards bob (presence from alice reaches bob)", async () => {
    await alice.page.getByRole("button", { name: "Stop video", exact: true }).click();
    await bob.page.locator(`[data-testid="tile"][data-peer-id="${aliceId}"][data-video="off"]`).waitFor({ timeout: 15_000 });
  });

  await bob.page.screenshot({ path: join(RESULTS_DIR, "resume-bob.png") });
});

test("a resume the server refuses falls back to a fresh Join that keeps the peer connection", { timeout: 180_000 }, async () => {
  const [carol, dave] = await Promise.all(["Carol", "Dave"].map((n) => participant(browser, n)));
  assert.ok(carol && dave);
  people.push(carol, dave);
  const room = `${stack.edge}/room/?r=fallback-${Date.now().toString(36)}`;

  await step("both join and exchange video", async () => {
    await joinViaLink(carol, room);
    await joinViaLink(dave, room);
    await Promise.all([waitForRemotes(carol, 1), waitForRemotes(dave, 1)]);
    await Promise.all([waitForDecodedVideo(carol, 1, 5), waitForDecodedVideo(dave, 1, 5)]);
  });
  const before = (await statsOf(dave)) as Stats;
  const carolBefore = (await statsOf(carol)) as Stats;
  const carolId = Object.keys(before.negotiation)[0] ?? "";
  const daveId = Object.keys(carolBefore.negotiation)[0] ?? "";

  // Cut Dave's socket with a resume token the server will not accept.
  await dave.page.evaluate(() => window.switchboard?.dropConnection({ spoilResume: true }));

  await step("dave rejoins", async () => {
    await dave.page.locator('[data-testid="connection-banner"][data-state="rejoined"]').waitFor({ timeout: 30_000 });
  });
  const after = (await statsOf(dave)) as Stats;
  assert.equal(after.signaling.joins, 2, "a fresh Join after the refused resume");
  assert.equal(after.signaling.resumeFallbacks, 1);
  assert.equal(after.signaling.resumes, 0);
  assert.deepEqual(after.negotiation[carolId], before.negotiation[carolId], "dave kept his peer connection to carol");
  assert.equal(after.mesh.closed, 0, "dave closed no peer connection");

  await step("carol kept hers through the replaced/joined pair, and video keeps flowing both ways", async () => {
    const carolAfter = (await statsOf(carol)) as Stats;
    assert.deepEqual(carolAfter.negotiation[daveId], carolBefore.negotiation[daveId]);
    assert.equal(carolAfter.mesh.closed, 0, "carol closed no peer connection");
    for (const [p, from] of [[carol, daveId], [dave, carolId]] as const) {
      const base = (await inboundVideo(p))[from]?.framesDecoded ?? 0;
      await until(`${p.name} decoding more frames`, async () =>
        ((await inboundVideo(p))[from]?.framesDecoded ?? 0) > base + 10 ? true : undefined,
      );
    }
  });

  await step("signaling works in the new session (presence from dave reaches carol)", async () => {
    await dave.page.getByRole("button", { name: "Mute", exact: true }).click();
    await carol.page.locator(`[data-testid="tile"][data-peer-id="${daveId}"][data-audio="off"]`).waitFor({ timeout: 15_000 });
  });
});

test("a reload resumes the same session: the room sees no leave or join, only media is set up again", { timeout: 180_000 }, async () => {
  const [erin, frank] = await Promise.all(["Erin", "Frank"].map((n) => participant(browser, n)));
  assert.ok(erin && frank);
  people.push(erin, frank);
  const room = `${stack.edge}/room/?r=reload-${Date.now().toString(36)}`;

  await step("both join and exchange video", async () => {
    await joinViaLink(erin, room);
    await joinViaLink(frank, room);
    await Promise.all([waitForRemotes(erin, 1), waitForRemotes(frank, 1)]);
    await Promise.all([waitForDecodedVideo(erin, 1, 5), waitForDecodedVideo(frank, 1, 5)]);
  });
  const sessionBefore = await frank.page.evaluate(() => window.switchboard?.call.client.sessionId);
  const frankId = Object.keys(((await statsOf(erin)) as Stats).negotiation)[0] ?? "";
  assert.ok(sessionBefore && frankId);
  const erinSeen = erin.console.length;

  await frank.page.reload();

  await step("frank is back in the call without the pre-join, in the same session", async () => {
    await frank.page.locator('[data-testid="call"][data-status="joined"]').waitFor({ timeout: 30_000 });
    const st = (await statsOf(frank)) as Stats;
    assert.equal(st.signaling.resumes, 1, "resumed");
    assert.equal(st.signaling.joins, 0, "no Join");
    assert.equal(await frank.page.evaluate(() => window.switchboard?.call.client.sessionId), sessionBefore);
  });

  await step("media is set up again both ways", async () => {
    await Promise.all([waitForRemotes(erin, 1), waitForRemotes(frank, 1)]);
    await waitForDecodedVideo(frank, 1, 5);
    const base = (await inboundVideo(erin))[frankId]?.framesDecoded ?? 0;
    await until("erin decoding frank's new video", async () =>
      ((await inboundVideo(erin))[frankId]?.framesDecoded ?? 0) > base + 10 ? true : undefined,
    );
  });

  const erinAfter = (await statsOf(erin)) as Stats;
  assert.ok(erinAfter.mesh.remoteRestarts >= 1, "erin saw frank's new peer connection and answered it");
  const presence = erin.console.slice(erinSeen).filter((l) => /RX .*"participant(Left|Joined)"/.test(l));
  assert.deepEqual(presence, [], "erin saw no leave or join");
  await frank.page.screenshot({ path: join(RESULTS_DIR, "reload-frank.png") });
});
