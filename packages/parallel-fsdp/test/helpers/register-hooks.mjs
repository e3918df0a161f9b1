import { register } from 'node:module';

register('../../../../tools/test/ts-hooks.mjs', import.meta.url);
