// @ts-check
/* global module */
// @oqs/liboqs-js (the optional WASM backend of @x/pqc) declares engines.node >= 22, so pnpm skips it on Node 20
// although it loads and passes @x/pqc's self-test there. Dropping that field lets this workspace install and test it
// on Node 20 too. Users' installs are unaffected: @x/pqc lists it as an optional dependency.

/** @param {{ name?: string, engines?: Record<string, string> }} pkg */
function readPackage(pkg) {
  if (pkg.name === '@oqs/liboqs-js' && pkg.engines) delete pkg.engines.node
  return pkg
}

module.exports = { hooks: { readPackage } }
