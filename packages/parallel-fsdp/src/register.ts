// Side-effect entry: `import '@omnitrain/parallel-fsdp/register'` installs the plugin in the default registry.
import { defaultRegistry } from '@omnitrain/core';
import { plugin } from './index.js';

defaultRegistry().use(plugin);
