/**
 * Compile-time check that the browser host offers exactly what the Node host does
 * (same names, same types), so code written against `#host` runs on either.
 */
import type * as NodeHost from './node.js';
import type * as WebHost from './web.js';

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
export const hostsMatch: Same<typeof NodeHost, typeof WebHost> = true;
