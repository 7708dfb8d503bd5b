import type { NextConfig } from "next";

// A static export: the Rust edge serves `out/` on the same origin as the
// WebSocket, so there is no Node server and no per-room route (the room is
// in the query string). trailingSlash gives `room/index.html`, which any
// static file server maps to `/room/`.
const config: NextConfig = {
  output: "export",
  trailingSlash: true,
  images: { unoptimized: true },
  reactStrictMode: true,
  poweredByHeader: false,
};

export default config;
