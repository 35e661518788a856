// Paths the tests share: the package and the repository's docs/schemas.
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// Compiled to dist/test/, two levels below the package.
export const PACKAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const SCHEMAS_DIR = resolve(PACKAGE_DIR, '../../docs/schemas');
