/**
 * Speaker (audio output) choice, for browsers with
 * `HTMLMediaElement.prototype.setSinkId`. The choice lives for the page;
 * every remote media element follows it (see VideoTile).
 */

/** "" is the system default output. */
let current = "";
const listeners = new Set<() => void>();

/** Whether audio output can be chosen here (pass a prototype to test). */
export function speakerSupported(proto: object | undefined = typeof HTMLMediaElement !== "undefined" ? HTMLMediaElement.prototype : undefined): boolean {
  return Boolean(proto && typeof (proto as { setSinkId?: unknown }).setSinkId === "function");
}

export interface OutputOption {
  id: string;
  label: string;
}

/**
 * The outputs to offer: the system default first (as ""), then each device
 * once, named by its label or by position when the browser hides labels.
 */
export function speakerOptions(devices: readonly Pick<MediaDeviceInfo, "deviceId" | "label" | "kind">[]): OutputOption[] {
  const out: OutputOption[] = [{ id: "", label: "System default" }];
  const seen = new Set<string>([""]);
  let i = 0;
  for (const d of devices) {
    if (d.kind !== "audiooutput" || d.deviceId === "default" || seen.has(d.deviceId)) continue;
    seen.add(d.deviceId);
    i += 1;
    out.push({ id: d.deviceId, label: d.label || `Speaker ${i}` });
  }
  return out;
}

/** The choice to show: the remembered one if still offered, else the default. */
export function effectiveSpeaker(chosen: string, options: readonly OutputOption[]): string {
  return options.some((o) => o.id === chosen) ? chosen : "";
}

export const speaker = {
  get: (): string => current,
  set(id: string): void {
    if (id === current) return;
    current = id;
    for (const l of listeners) l();
  },
  subscribe(cb: () => void): () => void {
    listeners.add(cb);
    return () => listeners.delete(cb);
  },
};

type SinkElement = HTMLMediaElement & { sinkId?: string; setSinkId?: (id: string) => Promise<void> };

/** Routes one element to the chosen output; resolves false if that failed. */
export async function applySpeaker(el: HTMLMediaElement, id: string = current): Promise<boolean> {
  const e = el as SinkElement;
  if (typeof e.setSinkId !== "function") return false;
  if (e.sinkId === id) return true;
  try {
    await e.setSinkId(id);
    return true;
  } catch {
    return false;
  }
}
