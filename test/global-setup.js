// Bundles the Lambda and worker assets once before any test file runs,
// because the constructs reference them and the end-to-end test runs them.
const { execFileSync } = require('child_process');
const path = require('path');

module.exports = async () => {
  execFileSync(process.execPath, [path.join(__dirname, '..', 'scripts', 'bundle-assets.js')], { stdio: 'inherit' });
};
