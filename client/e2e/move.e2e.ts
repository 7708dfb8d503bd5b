/**
 * The application's backend moves a participant to another room
 * (RoomService.MoveParticipant over gRPC against the real `switchboard
 * all`; see support/roomService.ts) and pushes data to it (SendData).
 *
 * Alice and Bob are in room A, Carol in room B (created by the backend
 * with its own limit and metadata). Bob is moved to B: his page names B
 * (heading, tab title, a passing banner), its limit and metadata; his
 * connection to Alice closes and one to Carol opens, video flows both
 * ways; Alice's page drops his tile at once and says he moved. His session
 * continues (no Join). The page URL keeps `?r=A` (see the README); a
 * reload still resumes in B, and Carol sees no leave or join. Data sent to
 * Bob fires the library's `data` event on his page.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import type { Browser, Page } from "playwright-core";
import { axeSerious, describe } from "./support/axe";
import { inboundVideo, joinViaLink, launch, participant, stepper, until, waitForDecodedVideo, waitForRemotes, type Participant } from "./support/browser";
import { roomService, type RoomService } from "./support/roomService";
import { RESULTS_DIR, startStack, type Stack } from "./support/stack";

let stack: Stack;
let browser: Browser;
let backend: RoomService;
const people: Participant[] = [];

before(async () => {
  mkdirSync(RESULTS_DIR, { recursive: true });
  stack = await startStack();
  browser = await launch();
  backend = await roomService(stack);
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

const step = stepper(people, () => stack.logs, { dir: RESULTS_DIR, tag: "move-failure" });

function selfId(page: Page): Promise<string> {
  return page.evaluate(() => window.switchboard?.call.snapshot.selfId ?? "");
}

function signalingStats(page: Page) {
  return page.evaluate(() => {
    const sb = window.switchboard;
    return sb ? { ...sb.stats().signaling, sessionId: sb.call.client.sessionId ?? "", peers: Object.keys(sb.stats().negotiation) } : null;
  });
}

/** Frames decoded from `from` so far. */
async function framesFrom(p: Participant, from: string): Promise<number> {
  return (await inboundVideo(p))[from]?.framesDecoded ?? 0;
}

/** Waits until `p` decodes 10 more frames from `from` than now. */
async function videoGrows(p: Participant, from: string): Promise<void> {
  const base = await framesFrom(p, from);
  await until(`${p.name} decoding more frames from ${from}`, async () => ((await framesFrom(p, from)) > base + 10 ? true : undefined), { timeout: 30_000 });
}

/** The room size line of the People panel. */
async function roomSizeText(page: Page): Promise<string> {
  await page.getByRole("tab", { name: /^People/ }).click();
  return (await page.getByTestId("room-size").innerText()).trim();
}

/** Presence frames about `id` that `p` received since console line `from`. */
function presenceAbout(p: Participant, id: string, from: number): string[] {
  return p.console.slice(from).filter((l) => /RX .*"participant(Left|Joined)"/.test(l) && l.includes(id));
}

test("the backend moves Bob to another room, then sends him data; a reload resumes in the new room", { timeout: 240_000 }, async () => {
  const [alice, bob, carol] = await Promise.all(["Alice", "Bob", "Carol"].map((n) => participant(browser, n)));
  assert.ok(alice && bob && carol);
  people.push(alice, bob, carol);
  const suffix = Date.now().toString(36);
  const roomA = `move-a-${suffix}`;
  const roomB = `move-b-${suffix}`;
  const metadataB = '{"breakout":1}';

  const [aliceId, bobId, carolId] = await step("Alice and Bob in A, Carol in B (a room the backend made: at most 6, with metadata)", async () => {
    await backend.createRoom({ room: roomB, maxParticipants: 6, metadata: metadataB });
    await joinViaLink(alice, `${stack.edge}/room/?r=${roomA}`);
    await joinViaLink(bob, `${stack.edge}/room/?r=${roomA}`);
    await joinViaLink(carol, `${stack.edge}/room/?r=${roomB}`);
    await Promise.all([waitForRemotes(alice, 1), waitForRemotes(bob, 1)]);
    await waitForDecodedVideo(alice, 1, 5);
    return [await selfId(alice.page), await selfId(bob.page), await selfId(carol.page)];
  });
  assert.ok(aliceId && bobId && carolId);
  const before = await signalingStats(bob.page);
  assert.ok(before);
  const aliceSeen = alice.console.length;
  const carolSeen = carol.console.length;

  await step("moved: Bob's page names room B in the heading, the title and a passing banner; the URL stays", async () => {
    await backend.moveParticipant({ room: roomA, identity: bobId, destination: roomB });
    await bob.page.locator(".room-name", { hasText: roomB }).waitFor({ timeout: 10_000 });
    const banner = bob.page.locator('[data-testid="connection-banner"][data-state="moved"]');
    await banner.waitFor({ timeout: 5_000 });
    assert.equal((await banner.locator(".banner-text").innerText()).trim(), `You were moved to ${roomB}.`);
    assert.equal(await bob.page.title(), `${roomB} · Switchboard`);
    assert.equal(new URL(bob.page.url()).searchParams.get("r"), roomA, "the page URL keeps the room it was opened with");
    assert.equal(await bob.page.evaluate(() => window.switchboard?.roomMetadata()), metadataB);
  });

  await step("Alice's page drops Bob at once and says he moved", async () => {
    await alice.page.locator(`[data-testid="tile"][data-peer-id="${bobId}"]`).waitFor({ state: "detached", timeout: 5_000 });
    await until("Alice's announcement", async () => {
      const text = await alice.page.getByTestId("announcer").innerText();
      return text === "Bob moved to another room" ? text : undefined;
    }, { timeout: 5_000 });
    assert.deepEqual(presenceAbout(alice, bobId, aliceSeen).map((l) => /"reason":"(\w+)"/.exec(l)?.[1]), ["moved"]);
  });

  await step("Bob and Carol connect; video flows both ways; Bob's connection to Alice is closed", async () => {
    await Promise.all([waitForRemotes(bob, 1), waitForRemotes(carol, 1)]);
    await bob.page.locator(`[data-testid="tile"][data-peer-id="${carolId}"]`).waitFor();
    await carol.page.locator(`[data-testid="tile"][data-peer-id="${bobId}"]`).waitFor();
    await Promise.all([videoGrows(bob, carolId), videoGrows(carol, bobId)]);
    const after = await signalingStats(bob.page);
    assert.ok(after);
    assert.deepEqual(after.peers, [carolId], "no connection to Alice left");
    assert.equal(after.sessionId, before.sessionId, "the same session");
    assert.equal(after.joins, before.joins, "no Join");
    assert.equal(presenceAbout(carol, bobId, carolSeen).length, 1, "Carol heard Bob join, once");
  });

  await step("the room size follows: 2 of B's 6; no serious axe violation", async () => {
    assert.equal(await roomSizeText(bob.page), "2 of 6 participants");
    const bad = await axeSerious(bob.page);
    assert.deepEqual(bad, [], describe(bad));
    await bob.page.screenshot({ path: `${RESULTS_DIR}/move-bob.png` });
    await alice.page.screenshot({ path: `${RESULTS_DIR}/move-alice.png` });
  });

  await step("data from the backend fires the library's data event on Bob's page", async () => {
    await bob.page.evaluate(() => {
      const heard: { topic: string; payload: string }[] = [];
      (window as unknown as { __heardData: typeof heard }).__heardData = heard;
      window.switchboard?.call.client.on("data", ({ topic, payload }) => heard.push({ topic, payload }));
    });
    const payload = JSON.stringify({ question: "Lunch?" });
    const answer = (await backend.sendData({ room: roomB, identities: [bobId], topic: "poll", payload })) as { delivered?: number };
    assert.equal(answer.delivered, 1);
    const heard = await until("Bob's data event", async () => {
      const h = await bob.page.evaluate(() => (window as unknown as { __heardData: unknown[] }).__heardData);
      return h.length > 0 ? h : undefined;
    }, { timeout: 10_000 });
    assert.deepEqual(heard, [{ topic: "poll", payload }]);
    const kept = await bob.page.evaluate(() => window.switchboard?.data().map(({ topic, payload }) => ({ topic, payload })));
    assert.deepEqual(kept, [{ topic: "poll", payload }], "window.switchboard.data() has it too");
    assert.equal(
      await carol.page.evaluate(() => window.switchboard?.data().length),
      0,
      "only the participants asked for get it",
    );
  });

  const carolBeforeReload = carol.console.length;
  await bob.page.reload();

  await step("a reload resumes the moved session in room B: no Join, the same session; Carol sees no leave or join", async () => {
    await bob.page.locator('[data-testid="call"][data-status="joined"]').waitFor({ timeout: 30_000 });
    const st = await signalingStats(bob.page);
    assert.ok(st);
    assert.equal(st.resumes, 1, "resumed");
    assert.equal(st.joins, 0, "no Join");
    assert.equal(st.sessionId, before.sessionId);
    await bob.page.locator(".room-name", { hasText: roomB }).waitFor({ timeout: 5_000 });
    assert.equal(new URL(bob.page.url()).searchParams.get("r"), roomA);
    await Promise.all([waitForRemotes(bob, 1), waitForRemotes(carol, 1)]);
    await Promise.all([videoGrows(bob, carolId), videoGrows(carol, bobId)]);
    assert.deepEqual(presenceAbout(carol, bobId, carolBeforeReload), [], "Carol saw no leave or join");
    assert.equal(presenceAbout(alice, bobId, aliceSeen).length, 1, "Alice heard only the move");
    assert.equal(await remoteTiles(alice.page), 0, "Bob is not back in A");
    assert.equal(await roomSizeText(bob.page), "2 of 6 participants", "the limit survives the reload");
    await bob.page.screenshot({ path: `${RESULTS_DIR}/move-reload-bob.png` });
  });
});

/** The number of remote tiles on a page. */
function remoteTiles(page: Page): Promise<number> {
  return page.locator('[data-testid="tile"][data-local="false"]').count();
}
