/**
 * What the call does with the `publish` permission (our SDP offers are
 * relayed only with it; docs/protocol.md §6.2): pure decisions, applied by
 * call.ts. The application's backend may take it away and give it back
 * during the call (`selfUpdated`); a token may also withhold it from the
 * start (a viewer).
 *
 * Without it we send no video: the camera is turned off and a screen share
 * stopped, and the video sender carries nothing (replaceTrack(null), no
 * renegotiation). The microphone is left as it is: the permission governs
 * offers, and the person's words say camera and screen sharing. Given back,
 * nothing turns on by itself: the person turns the camera on again.
 */
import type { LocalMediaState } from "./media";

export interface PublishView {
  /** Our offers are relayed (`self.permissions.publish`). */
  allowed: boolean;
  /**
   * Why not: "join" = the session began without it (a viewer's token);
   * "revoked" = taken away during the call. Null while allowed.
   */
  deniedBy: "join" | "revoked" | null;
  /** The person closed the banner about it (until it changes again). */
  dismissed: boolean;
}

export const PUBLISH_ALLOWED: PublishView = { allowed: true, deniedBy: null, dismissed: false };

export type PublishChange = "revoked" | "granted" | null;

/**
 * The view after the server said `allowed` (Joined, or selfUpdated).
 * `prev` null: nothing known yet (the first Joined of this page).
 */
export function nextPublish(prev: PublishView | null, allowed: boolean): { view: PublishView; change: PublishChange } {
  if (allowed) {
    const change = prev && !prev.allowed ? "granted" : null;
    return { view: prev?.allowed ? prev : PUBLISH_ALLOWED, change };
  }
  if (prev === null) return { view: { allowed: false, deniedBy: "join", dismissed: false }, change: null };
  if (!prev.allowed) return { view: prev, change: null };
  return { view: { allowed: false, deniedBy: "revoked", dismissed: false }, change: "revoked" };
}

/** What to turn off when we may not publish (nothing if it is off already). */
export function mediaToStop(m: Pick<LocalMediaState, "camera" | "camOn" | "screen">, view: PublishView): { camera: boolean; screen: boolean } {
  if (view.allowed) return { camera: false, screen: false };
  return { camera: Boolean(m.camera) && m.camOn, screen: m.screen !== null };
}

/** The video track we send: none without the permission. */
export function videoToSend(outgoing: MediaStreamTrack | null, view: PublishView): MediaStreamTrack | null {
  return view.allowed ? outgoing : null;
}
