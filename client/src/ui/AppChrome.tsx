"use client";
/**
 * Around every page: registers the service worker (production builds) and
 * tells the user when the server cannot be reached. `navigator.onLine` alone
 * is not enough (it stays true when only the server is down), so we also
 * probe the origin; the service worker lets `?__probe` requests through to
 * the network.
 */
import { useEffect, useState, type ReactNode } from "react";

const PROBE_EVERY_MS = 15_000;

async function reachable(): Promise<boolean> {
  if (typeof navigator !== "undefined" && navigator.onLine === false) return false;
  try {
    const res = await fetch(`/manifest.webmanifest?__probe=${Date.now()}`, { cache: "no-store" });
    return res.ok || res.status < 500;
  } catch {
    return false;
  }
}

export function AppChrome({ children }: { children: ReactNode }) {
  const [offline, setOffline] = useState(false);

  useEffect(() => {
    if (process.env.NODE_ENV === "production" && "serviceWorker" in navigator) {
      navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch((err: unknown) => {
        console.warn("switchboard: service worker registration failed", err);
      });
    }
  }, []);

  useEffect(() => {
    let alive = true;
    const check = () => {
      void reachable().then((ok) => {
        if (alive) setOffline(!ok);
      });
    };
    check();
    const timer = setInterval(check, PROBE_EVERY_MS);
    window.addEventListener("online", check);
    window.addEventListener("offline", check);
    return () => {
      alive = false;
      clearInterval(timer);
      window.removeEventListener("online", check);
      window.removeEventListener("offline", check);
    };
  }, []);

  return (
    <>
      {offline && (
        <div className="offline-banner" role="status" data-testid="offline-banner">
          <strong>You are offline.</strong> Switchboard can&apos;t reach its server. Calls resume when the
          connection is back.
        </div>
      )}
      {children}
    </>
  );
}
