// Shared by the tests: the native backend must be there unless OMNITRAIN_ALLOW_NO_NATIVE=1.
import { nativeStatus } from '@omnitrain/kernels-cpu';

export const status = nativeStatus();
export const allowNoNative = process.env.OMNITRAIN_ALLOW_NO_NATIVE === '1';
