// The whole Hydrogen web client (login, room list, rooms, end-to-end encryption), as
// Hydrogen's own entry point starts it, from the components hydrogen-view-sdk exports.
// The homeserver offered on the login page comes from config.json beside index.html.
import {
  Platform, RootViewModel, FeatureSet, createNavigation, createRouter,
} from 'hydrogen-view-sdk';
import downloadSandboxPath from 'hydrogen-view-sdk/download-sandbox.html?url';
import workerPath from 'hydrogen-view-sdk/main.js?url';
import olmWasmPath from '@matrix-org/olm/olm.wasm?url';
import olmJsPath from '@matrix-org/olm/olm.js?url';
import olmLegacyJsPath from '@matrix-org/olm/olm_legacy.js?url';
import 'hydrogen-view-sdk/theme-element-light.css';

const assetPaths = {
  downloadSandbox: downloadSandboxPath,
  worker: workerPath,
  olm: { wasm: olmWasmPath, legacyBundle: olmLegacyJsPath, wasmBundle: olmJsPath },
  serviceWorker: 'sw.js',
};

async function main() {
  const platform = new Platform({ container: document.body, assetPaths, configURL: 'config.json' });
  await platform.init();
  const navigation = createNavigation();
  platform.setNavigation(navigation);
  const urlRouter = createRouter({ navigation, history: platform.history });
  urlRouter.attach();
  const vm = new RootViewModel({
    platform,
    urlRouter,
    navigation,
    logger: platform.logger,
    features: await FeatureSet.load(platform.settingsStorage),
  });
  window.__hydrogenViewModel = vm;
  await vm.load();
  platform.createAndMountRootView(vm);
}

main().catch((err) => {
  console.error(err);
  document.body.innerText = `Hydrogen failed to start: ${err}`;
});
