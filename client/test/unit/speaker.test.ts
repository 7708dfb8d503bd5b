import { test } from "node:test";
import assert from "node:assert/strict";
import { applySpeaker, effectiveSpeaker, speaker, speakerOptions, speakerSupported } from "../../src/ui/speaker";

const dev = (deviceId: string, label = "", kind: MediaDeviceKind = "audiooutput") => ({ deviceId, label, kind });

test("supported only where the media element prototype has setSinkId", () => {
  assert.equal(speakerSupported({ setSinkId() {} }), true);
  assert.equal(speakerSupported({}), false);
  assert.equal(speakerSupported(undefined), false);
  // Node has no HTMLMediaElement: the default argument says unsupported.
  assert.equal(speakerSupported(), false);
});

test("options: system default first, outputs once, unlabeled ones numbered, other kinds ignored", () => {
  const opts = speakerOptions([
    dev("default", "Default - Speakers"),
    dev("a", "Speakers"),
    dev("mic", "Mic", "audioinput"),
    dev("b"),
    dev("a", "Speakers"),
  ]);
  assert.deepEqual(opts, [
    { id: "", label: "System default" },
    { id: "a", label: "Speakers" },
    { id: "b", label: "Speaker 2" },
  ]);
});

test("a remembered output that went away falls back to the default", () => {
  const opts = speakerOptions([dev("a", "Speakers")]);
  assert.equal(effectiveSpeaker("a", opts), "a");
  assert.equal(effectiveSpeaker("gone", opts), "");
});

test("the choice is remembered and listeners hear of changes once", () => {
  let calls = 0;
  const off = speaker.subscribe(() => calls++);
  speaker.set("a");
  speaker.set("a");
  assert.equal(speaker.get(), "a");
  assert.equal(calls, 1);
  off();
  speaker.set("");
  assert.equal(calls, 1);
});

test("applySpeaker routes an element, skips one already there, and reports failure", async () => {
  const routed: string[] = [];
  const el = { sinkId: "", setSinkId: async (id: string) => void routed.push(id) } as unknown as HTMLMediaElement;
  assert.equal(await applySpeaker(el, "a"), true);
  assert.deepEqual(routed, ["a"]);
  const there = { sinkId: "a", setSinkId: async () => assert.fail("not called") } as unknown as HTMLMediaElement;
  assert.equal(await applySpeaker(there, "a"), true);
  const failing = { sinkId: "", setSinkId: async () => Promise.reject(new Error("NotFoundError")) } as unknown as HTMLMediaElement;
  assert.equal(await applySpeaker(failing, "b"), false);
  assert.equal(await applySpeaker({} as HTMLMediaElement, "a"), false);
});
