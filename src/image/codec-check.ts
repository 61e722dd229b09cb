/** Compile-time check that the browser image codec offers what the Node one does (see `#codec`). */
import type * as NodeCodec from './codec-node.js';
import type * as WebCodec from './codec-web.js';

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
export const codecsMatch: Same<Pick<typeof WebCodec, keyof typeof NodeCodec>, typeof NodeCodec> = true;
