import hashlib, hmac, time

TOLERANCE = 300  # seconds

def verify(secret: bytes, header: str, body: bytes, now: float | None = None) -> bool:
    """Checks a Switchboard-Signature header against the raw request body."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - timestamp) > TOLERANCE:
        return False  # too old (a replay) or from the future
    expected = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given)

if __name__ == "__main__":  # the self-check CI runs (scripts/test.sh)
    body = b'what do ya want for nothing?'
    header = "t=1800000000,v1=ab5a2e6f7ddd4f6783bae7a65618acf1b188b4ca973bbebbbdeb60024ee0f3f3"
    assert verify(b"Jefe", header, body, now=1800000010)
    assert not verify(b"Jefe", header, body + b" ", now=1800000010)
    assert not verify(b"Jefe", header, body, now=1800000400)
    print("python ok")
