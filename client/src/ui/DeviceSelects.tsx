"use client";
/** Microphone, camera and (where supported) speaker pickers. */
import { useEffect, useId, useState, useSyncExternalStore } from "react";
import type { DeviceLists, LocalMedia } from "../rtc/media";
import { effectiveSpeaker, speaker, speakerOptions, speakerSupported } from "./speaker";

const EMPTY: DeviceLists = { audioinput: [], videoinput: [], audiooutput: [] };
const never = () => () => undefined;

export function useMediaState(media: LocalMedia) {
  return useSyncExternalStore(
    (cb) => media.on("changed", cb),
    () => media.state,
    () => media.state,
  );
}

export function DeviceSelects({ media }: { media: LocalMedia }) {
  const state = useMediaState(media);
  const [devices, setDevices] = useState<DeviceLists>(EMPTY);
  const [error, setError] = useState("");
  const micId = useId();
  const camId = useId();
  const outId = useId();
  const canChooseOutput = useSyncExternalStore(never, () => speakerSupported(), () => false);
  const chosenOutput = useSyncExternalStore(speaker.subscribe, speaker.get, speaker.get);
  const outputs = speakerOptions(devices.audiooutput);

  useEffect(() => {
    let alive = true;
    const refresh = () =>
      void media.devices().then((d) => {
        if (alive) setDevices(d);
      });
    refresh();
    navigator.mediaDevices?.addEventListener?.("devicechange", refresh);
    return () => {
      alive = false;
      navigator.mediaDevices?.removeEventListener?.("devicechange", refresh);
    };
  }, [media, state.audio, state.camera]);

  const choose = (kind: "audioinput" | "videoinput", id: string) => {
    setError("");
    media.useDevice(kind, id).catch(() => setError("Could not switch to that device."));
  };

  const label = (d: MediaDeviceInfo, i: number, what: string) => d.label || `${what} ${i + 1}`;

  return (
    <div className="devices">
      <div className="field">
        <label htmlFor={micId}>Microphone</label>
        <select
          id={micId}
          value={state.audioDeviceId}
          onChange={(e) => choose("audioinput", e.target.value)}
          disabled={devices.audioinput.length === 0}
        >
          {devices.audioinput.length === 0 && <option value="">No microphone found</option>}
          {devices.audioinput.map((d, i) => (
            <option key={d.deviceId || i} value={d.deviceId}>
              {label(d, i, "Microphone")}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor={camId}>Camera</label>
        <select
          id={camId}
          value={state.videoDeviceId}
          onChange={(e) => choose("videoinput", e.target.value)}
          disabled={devices.videoinput.length === 0}
        >
          {devices.videoinput.length === 0 && <option value="">No camera found</option>}
          {devices.videoinput.map((d, i) => (
            <option key={d.deviceId || i} value={d.deviceId}>
              {label(d, i, "Camera")}
            </option>
          ))}
        </select>
      </div>
      {canChooseOutput && (
        <div className="field">
          <label htmlFor={outId}>Speaker</label>
          <select
            id={outId}
            value={effectiveSpeaker(chosenOutput, outputs)}
            onChange={(e) => speaker.set(e.target.value)}
            data-testid="speaker-select"
          >
            {outputs.map((o) => (
              <option key={o.id || "default"} value={o.id}>
                {o.label}
              </option>
            ))}
          </select>
        </div>
      )}
      {error && (
        <p className="field-error" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}
