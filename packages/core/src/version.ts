/** Version of @omnitrain/core (plugins compare their coreRange against it). */
export const CORE_VERSION = '0.1.0';
