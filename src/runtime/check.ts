/**
 * Compile-time check that the browser runtime adapter offers what the Node one does, so
 * `session.ts` runs on either through `#ort`.
 */
import type * as NodeOrt from './ort-node.js';
import type * as WebOrt from './ort-web.js';

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
export const runtimesMatch: Same<typeof NodeOrt, typeof WebOrt> = true;
