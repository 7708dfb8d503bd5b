/** The dev-mode token endpoint of the edge (same origin). */
export interface DevToken {
  token: string;
  expiresAt: number;
}

export class TokenError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "TokenError";
  }
}

export async function fetchDevToken(req: { identity: string; room: string; name: string }): Promise<DevToken> {
  let res: Response;
  try {
    res = await fetch("/v1/dev/token", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(req),
      cache: "no-store",
    });
  } catch {
    throw new TokenError("Can't reach the Switchboard server. Check your connection.", 0);
  }
  if (res.status === 404) {
    throw new TokenError("This server does not offer dev sign-in.", 404);
  }
  if (!res.ok) {
    throw new TokenError(`Sign-in failed (HTTP ${res.status}).`, res.status);
  }
  const body = (await res.json()) as Partial<DevToken>;
  if (typeof body.token !== "string" || !body.token) {
    throw new TokenError("Sign-in answer had no token.", res.status);
  }
  return { token: body.token, expiresAt: Number(body.expiresAt ?? 0) };
}

/** The signaling URL on this origin: ws: for http:, wss: for https:. */
export function signalingUrl(): string {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${location.host}/ws`;
}
