/** Words for how full the room is, from the server's `limits.maxParticipants`. */

export interface RoomSizeView {
  /** E.g. "3 of 8 participants"; just "3 participants" when the limit is unknown. */
  text: string;
  /** The room admits nobody else. */
  full: boolean;
  /** A plain sentence when full, for sighted and screen-reader users alike. */
  fullText: string | null;
}

/**
 * `count` includes us; `max` is 0 (or missing) when the server did not say
 * (an older server; or a reload of a session saved before the limit was
 * kept with it, which resumes without a join reply).
 */
export function roomSize(count: number, max: number | undefined): RoomSizeView {
  const n = Math.max(0, Math.floor(count));
  const limit = max && max > 0 ? Math.floor(max) : 0;
  const noun = (k: number) => (k === 1 ? "participant" : "participants");
  if (!limit) return { text: `${n} ${noun(n)}`, full: false, fullText: null };
  const full = n >= limit;
  return {
    text: `${n} of ${limit} ${noun(limit)}`,
    full,
    fullText: full ? "The room is full: nobody else can join." : null,
  };
}
