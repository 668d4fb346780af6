// Builds the dashboard into the gateway's static directory: `npm run build` (or
// `make dashboard`). The gateway serves index.html at `/` and the hashed assets
// under `/dashboard/`, so `base` is that prefix. `npm run dev` proxies the API to a
// gateway on 127.0.0.1:8000 (started with `make run`).
import { defineConfig } from "vite";

export default defineConfig({
  base: "/dashboard/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "../gateway/static/dashboard",
    emptyOutDir: true,
    sourcemap: false,
    target: "es2022",
    chunkSizeWarningLimit: 800,
  },
  server: { proxy: { "/api": "http://127.0.0.1:8000" } },
});
