/**
 * The call's decisions about the publish permission (rtc/publishPermission.ts),
 * its words (ui/publishControls.ts, the status model's banner) and the
 * presence attributes sent when the backend has set some of ours.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ErrorCode } from "@switchboard/signaling/proto";
import { attributesKey, presenceFor } from "../../src/rtc/call";
import type { LocalMediaState } from "../../src/rtc/media";
import type { MeshLoadWarning } from "../../src/rtc/meshLoad";
import { PUBLISH_ALLOWED, mediaToStop, nextPublish, videoToSend, type PublishView } from "../../src/rtc/publishPermission";
import { callStatus } from "../../src/ui/callStatus";
import { publishControls } from "../../src/ui/publishControls";

const revoked: PublishView = { allowed: false, deniedBy: "revoked", dismissed: false };

test("first word from the server: allowed is no news; denied is a viewer from the join", () => {
  assert.deepEqual(nextPublish(null, true), { view: PUBLISH_ALLOWED, change: null });
  assert.deepEqual(nextPublish(null, false), { view: { allowed: false, deniedBy: "join", dismissed: false }, change: null });
});

test("taken away during the call: revoked; given back: granted; the same word again: nothing", () => {
  const r = nextPublish(PUBLISH_ALLOWED, false);
  assert.deepEqual(r, { view: revoked, change: "revoked" });
  assert.deepEqual(nextPublish(r.view, false), { view: r.view, change: null }, "a rename while revoked changes nothing");
  const dismissed = { ...revoked, dismissed: true };
  assert.equal(nextPublish(dismissed, false).view, dismissed, "a dismissal holds while nothing changes");
  assert.deepEqual(nextPublish(dismissed, true), { view: PUBLISH_ALLOWED, change: "granted" });
  const again = nextPublish(PUBLISH_ALLOWED, false).view;
  assert.equal(again.dismissed, false, "revoked again: the banner comes back");
  assert.equal(nextPublish(PUBLISH_ALLOWED, true).view, PUBLISH_ALLOWED);
});

const media = (m: Partial<LocalMediaState>): LocalMediaState => ({
  audio: null,
  camera: null,
  screen: null,
  micOn: true,
  camOn: true,
  audioDeviceId: "",
  videoDeviceId: "",
  error: null,
  ...m,
});
const track = (id: string) => ({ id }) as MediaStreamTrack;

test("without publish: the camera goes off, a share stops, no video is sent; the microphone stays", () => {
  const cam = track("cam");
  const screen = track("screen");
  assert.deepEqual(mediaToStop(media({ camera: cam, screen }), revoked), { camera: true, screen: true });
  assert.deepEqual(mediaToStop(media({ camera: cam, camOn: false }), revoked), { camera: false, screen: false }, "already off");
  assert.deepEqual(mediaToStop(media({ camera: null }), revoked), { camera: false, screen: false }, "no camera");
  assert.deepEqual(mediaToStop(media({ camera: cam, screen }), PUBLISH_ALLOWED), { camera: false, screen: false });
  assert.equal(videoToSend(cam, revoked), null);
  assert.equal(videoToSend(cam, PUBLISH_ALLOWED), cam);
});

test("the buttons: disabled with the reason while withheld, enabled otherwise", () => {
  assert.deepEqual(publishControls(PUBLISH_ALLOWED), { disabled: false, hint: null });
  assert.deepEqual(publishControls(revoked), { disabled: true, hint: "The host has turned off your camera and screen sharing." });
  assert.match(publishControls({ allowed: false, deniedBy: "join", dismissed: false }).hint ?? "", /viewer/);
  assert.equal(publishControls({ ...revoked, dismissed: true }).disabled, true, "dismissing the banner does not enable them");
});

const joined = { status: "joined" as const, attempt: 0, retryInMs: undefined, notice: null, room: "demo", meshLoad: null, publish: PUBLISH_ALLOWED };
const strained: MeshLoadWarning = { cause: "device", worstFps: 9, sourceFps: 30, limitation: "cpu", peers: 4, video: "camera" };

test("the status model: revoked is one dismissible banner in words; the indicator stays Connected", () => {
  const s = callStatus({ ...joined, publish: revoked }, { online: true });
  assert.equal(s.indicator.text, "Connected");
  assert.deepEqual(s.banner, {
    state: "publish-revoked",
    tone: "info",
    text: "The host has turned off your camera and screen sharing.",
    dismissible: true,
  });
  assert.equal(callStatus({ ...joined, publish: { ...revoked, dismissed: true } }, { online: true }).banner, null);
  const viewer = callStatus({ ...joined, publish: { allowed: false, deniedBy: "join", dismissed: false } }, { online: true });
  assert.equal(viewer.banner?.state, "publish-denied");
});

test("the status model: granted back is a passing notice; one banner at a time, in priority", () => {
  const g = callStatus({ ...joined, notice: { kind: "publishGranted" } }, { online: true });
  assert.equal(g.banner?.state, "publish-granted");
  assert.equal(g.banner?.text, "You can turn on your camera and share your screen again.");
  const withRevoked = { ...joined, publish: revoked, meshLoad: strained };
  assert.equal(callStatus(withRevoked, { online: true }).banner?.state, "publish-revoked", "above the mesh-load advice");
  assert.equal(callStatus(withRevoked, { online: false }).banner?.state, "offline");
  assert.equal(callStatus({ ...withRevoked, status: "reconnecting", attempt: 1 }, { online: true }).banner?.state, "reconnecting");
  assert.equal(callStatus({ ...withRevoked, notice: { kind: "resumed" } }, { online: true }).banner?.state, "resumed");
  assert.equal(
    callStatus({ ...withRevoked, notice: { kind: "error", code: ErrorCode.rate_limited, detail: "" } }, { online: true }).banner?.state,
    "error",
  );
});

test("presence keeps the attributes the backend set and puts ours over them", () => {
  const m = media({ audio: track("mic"), micOn: false });
  assert.deepEqual(presenceFor({ role: "viewer", audio: "on" }, m), { role: "viewer", audio: "off", video: "off", screen: "off" });
  assert.equal(attributesKey({ a: "1", b: "2" }), attributesKey({ b: "2", a: "1" }), "order does not matter");
  assert.notEqual(attributesKey({ a: "1" }), attributesKey({ a: "1", b: "2" }));
  const server = { role: "viewer" };
  assert.notEqual(attributesKey(presenceFor(server, m)), attributesKey(server), "the backend replaced ours: send them again");
  const kept = presenceFor(server, m);
  assert.equal(attributesKey(presenceFor(kept, m)), attributesKey(kept), "nothing to send when the server has them");
});
