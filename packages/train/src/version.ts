/** Version of @omnitrain/train. */
export const TRAIN_VERSION = '0.1.0';
