import type { HandlerInstance } from '../handlers/types.js';
import { defineHandler } from '../handlers/types.js';
import { createStaticSite } from './handler.js';
import { staticOptionsSchema } from './schema.js';

/** `static:` — serve files from a folder or a published release (folder or `s3://` bucket). */
export const staticHandler = defineHandler({
  type: 'static',
  options: staticOptionsSchema,
  async create(o, deps) {
    const site = await createStaticSite(o, { baseDir: deps.baseDir, logger: deps.logger });
    const handler = ((ctx) => site.handle(ctx)) as HandlerInstance;
    handler.close = () => site.close();
    return handler;
  },
});

export { createStaticSite, type StaticSite } from './handler.js';
export { type StaticOptions, staticOptionsSchema } from './schema.js';
