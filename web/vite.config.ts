// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Build only: `npm run build` writes a self-contained dist/ (relative asset paths, no
// CDN, no web fonts) that `dreamdb serve --web-root web/dist` serves.
import { defineConfig } from "vite";

export default defineConfig({
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2020",
    assetsInlineLimit: 0,
    reportCompressedSize: false,
  },
});
