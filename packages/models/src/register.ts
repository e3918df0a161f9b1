// Side-effect entry: `import '@omnitrain/models/register'` installs the plugin in the default registry.
import { defaultRegistry } from '@omnitrain/core';
import { plugin } from './index.js';

defaultRegistry().use(plugin);
