import { messageQueueConformance } from './conformance.js';

messageQueueConformance({ name: 'memory', url: () => 'memory:' });
