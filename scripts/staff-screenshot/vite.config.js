// Builds the Hydrogen web client (hydrogen-view-sdk) into dist/, with Hydrogen's service
// worker (needed for its media downloads) at the root.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { defineConfig } from 'vite';

const require = createRequire(import.meta.url);
const sdkDir = dirname(require.resolve('hydrogen-view-sdk'));

export default defineConfig({
  base: './',
  publicDir: false,
  build: { outDir: 'dist', emptyOutDir: true, assetsInlineLimit: 0, chunkSizeWarningLimit: 2000 },
  plugins: [{
    name: 'hydrogen-service-worker',
    generateBundle() {
      this.emitFile({ type: 'asset', fileName: 'sw.js', source: readFileSync(join(sdkDir, 'sw.js'), 'utf8') });
    },
  }],
});
