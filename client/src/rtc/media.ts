/**
 * Local capture: microphone, camera and screen. Muting disables the track
 * (the connection keeps flowing, silence/black is sent) so unmuting is
 * instant and needs no renegotiation; the muted state reaches others through
 * presence attributes, not through the media.
 */
import { Emitter } from "@switchboard/signaling";

export interface LocalMediaState {
  audio: MediaStreamTrack | null;
  camera: MediaStreamTrack | null;
  screen: MediaStreamTrack | null;
  micOn: boolean;
  camOn: boolean;
  audioDeviceId: string;
  videoDeviceId: string;
  /** Why capture is unavailable, for the UI. */
  error: string | null;
}

export interface DeviceLists {
  audioinput: MediaDeviceInfo[];
  videoinput: MediaDeviceInfo[];
  audiooutput: MediaDeviceInfo[];
}

const VIDEO_CONSTRAINTS: MediaTrackConstraints = {
  width: { ideal: 1280 },
  height: { ideal: 720 },
  frameRate: { ideal: 30, max: 30 },
};

function describeError(err: unknown): string {
  const name = err instanceof DOMException ? err.name : "";
  if (name === "NotAllowedError") return "Camera and microphone access was blocked.";
  if (name === "NotFoundError") return "No camera or microphone was found.";
  if (name === "NotReadableError") return "The camera or microphone is in use by another app.";
  return "Camera and microphone are unavailable.";
}

export class LocalMedia extends Emitter<{ changed: LocalMediaState }> {
  private s: LocalMediaState = {
    audio: null,
    camera: null,
    screen: null,
    micOn: true,
    camOn: true,
    audioDeviceId: "",
    videoDeviceId: "",
    error: null,
  };

  get state(): LocalMediaState {
    return this.s;
  }

  /** The video we send: the screen while sharing, else the camera. */
  get outgoingVideo(): MediaStreamTrack | null {
    return this.s.screen ?? this.s.camera;
  }

  /** Starts capture; falls back to audio-only or video-only when one fails. */
  async start(prefs: { micOn: boolean; camOn: boolean; audioDeviceId?: string; videoDeviceId?: string }): Promise<void> {
    const md = navigator.mediaDevices;
    if (!md?.getUserMedia) {
      this.update({ error: "This browser cannot capture media (is the page served over HTTPS?)." });
      return;
    }
    const audio: MediaTrackConstraints | boolean = prefs.audioDeviceId
      ? { deviceId: { exact: prefs.audioDeviceId } }
      : true;
    const video: MediaTrackConstraints = prefs.videoDeviceId
      ? { ...VIDEO_CONSTRAINTS, deviceId: { exact: prefs.videoDeviceId } }
      : VIDEO_CONSTRAINTS;
    let stream: MediaStream | null = null;
    let error: string | null = null;
    for (const c of [{ audio, video }, { audio }, { video }] as MediaStreamConstraints[]) {
      try {
        stream = await md.getUserMedia(c);
        break;
      } catch (err) {
        error ??= describeError(err);
      }
    }
    const a = stream?.getAudioTracks()[0] ?? null;
    const v = stream?.getVideoTracks()[0] ?? null;
    if (a) a.enabled = prefs.micOn;
    if (v) v.enabled = prefs.camOn;
    this.update({
      audio: a,
      camera: v,
      micOn: prefs.micOn,
      camOn: prefs.camOn,
      audioDeviceId: a?.getSettings().deviceId ?? "",
      videoDeviceId: v?.getSettings().deviceId ?? "",
      error: a || v ? (a && v ? null : error) : error,
    });
  }

  setMic(on: boolean): void {
    if (this.s.audio) this.s.audio.enabled = on;
    this.update({ micOn: on });
  }

  setCam(on: boolean): void {
    if (this.s.camera) this.s.camera.enabled = on;
    this.update({ camOn: on });
  }

  /** Switches to another microphone or camera. */
  async useDevice(kind: "audioinput" | "videoinput", deviceId: string): Promise<void> {
    const md = navigator.mediaDevices;
    const constraints: MediaStreamConstraints =
      kind === "audioinput"
        ? { audio: { deviceId: { exact: deviceId } } }
        : { video: { ...VIDEO_CONSTRAINTS, deviceId: { exact: deviceId } } };
    const stream = await md.getUserMedia(constraints);
    if (kind === "audioinput") {
      const track = stream.getAudioTracks()[0] ?? null;
      if (track) track.enabled = this.s.micOn;
      this.s.audio?.stop();
      this.update({ audio: track, audioDeviceId: deviceId });
    } else {
      const track = stream.getVideoTracks()[0] ?? null;
      if (track) track.enabled = this.s.camOn;
      this.s.camera?.stop();
      this.update({ camera: track, videoDeviceId: deviceId });
    }
  }

  /** Shares a screen or window until stopped here or in the browser UI. */
  async startScreenShare(): Promise<void> {
    const md = navigator.mediaDevices;
    if (!md?.getDisplayMedia) throw new Error("Screen sharing is not supported in this browser.");
    const stream = await md.getDisplayMedia({ video: { frameRate: { ideal: 15, max: 30 } }, audio: false });
    const track = stream.getVideoTracks()[0];
    if (!track) return;
    track.contentHint = "detail";
    track.addEventListener("ended", () => {
      if (this.s.screen === track) this.update({ screen: null });
    });
    this.s.screen?.stop();
    this.update({ screen: track });
  }

  stopScreenShare(): void {
    this.s.screen?.stop();
    this.update({ screen: null });
  }

  async devices(): Promise<DeviceLists> {
    const lists: DeviceLists = { audioinput: [], videoinput: [], audiooutput: [] };
    const all = (await navigator.mediaDevices?.enumerateDevices?.()) ?? [];
    for (const d of all) lists[d.kind].push(d);
    return lists;
  }

  /** Releases every device. */
  stop(): void {
    this.s.audio?.stop();
    this.s.camera?.stop();
    this.s.screen?.stop();
    this.update({ audio: null, camera: null, screen: null });
  }

  private update(patch: Partial<LocalMediaState>): void {
    this.s = { ...this.s, ...patch };
    this.emit("changed", this.s);
  }
}
