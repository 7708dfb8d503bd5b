/* Switchboard service worker. Generated into out/sw.js by
 * scripts/build-sw.mjs, which fills in the version and the list of files of
 * the static export (the app shell).
 *
 * - Pages: network first (fresh deploys win), the cached shell when the
 *   network or the server is down, so the app opens offline and says so.
 * - Static assets (/_next/static is content-hashed): cache first.
 * - Never touched: the WebSocket (/ws), the API (/v1/...), connectivity
 *   probes (?__probe), other origins, non-GET requests.
 */
const VERSION = "__VERSION__";
const PRECACHE = __PRECACHE__;
const CACHE = `switchboard-shell-${VERSION}`;

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      // One missing file must not make the whole install fail.
      await Promise.all(
        PRECACHE.map((url) =>
          cache.add(new Request(url, { cache: "reload" })).catch((err) => {
            console.warn("switchboard sw: could not precache", url, err);
          }),
        ),
      );
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const key of await caches.keys()) {
        if (key.startsWith("switchboard-shell-") && key !== CACHE) await caches.delete(key);
      }
      await self.clients.claim();
    })(),
  );
});

function bypass(url, request) {
  return (
    request.method !== "GET" ||
    url.origin !== self.location.origin ||
    url.pathname === "/ws" ||
    url.pathname.startsWith("/v1/") ||
    url.searchParams.has("__probe")
  );
}

/** Cache keys a page may be stored under: /room/, /room/index.html, /room.html. */
function pageCandidates(pathname) {
  const out = [pathname];
  if (pathname.endsWith("/")) out.push(`${pathname}index.html`);
  else out.push(`${pathname}/`, `${pathname}/index.html`, `${pathname}.html`);
  return out;
}

async function cachedPage(pathname) {
  const cache = await caches.open(CACHE);
  for (const key of pageCandidates(pathname)) {
    const hit = await cache.match(key, { ignoreSearch: true });
    if (hit) return hit;
  }
  return (await cache.match("/")) || (await cache.match("/index.html"));
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (bypass(url, request)) return;

  if (request.mode === "navigate") {
    event.respondWith(
      (async () => {
        try {
          const response = await fetch(request);
          if (response.ok) {
            const cache = await caches.open(CACHE);
            await cache.put(url.pathname, response.clone());
          }
          return response;
        } catch {
          const cached = await cachedPage(url.pathname);
          return cached || new Response("Offline", { status: 503, headers: { "content-type": "text/plain" } });
        }
      })(),
    );
    return;
  }

  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      const hit = await cache.match(request, { ignoreSearch: true });
      if (hit) return hit;
      const response = await fetch(request);
      if (response.ok && url.pathname.startsWith("/_next/static/")) {
        await cache.put(request, response.clone());
      }
      return response;
    })(),
  );
});
