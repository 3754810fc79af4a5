import { defineConfig } from "vite";

// Two entries: the page and the service worker. The worker must keep a fixed name (sw.js)
// and stay an ES module (registered with { type: "module" }); the package's .wasm is emitted
// as an asset by both, from `new URL("pos_terminal_bg.wasm", import.meta.url)`.
export default defineConfig({
  build: {
    target: "es2022",
    rollupOptions: {
      input: { main: "index.html", sw: "src/sw.ts" },
      output: {
        entryFileNames: (chunk) => (chunk.name === "sw" ? "sw.js" : "assets/[name]-[hash].js"),
      },
    },
  },
});
