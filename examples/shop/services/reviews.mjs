// The reviews service. Product 4's reviews are slow (600 ms): the web page waits for them,
// the mobile page's tighter timeout leaves them out (trellis-completed: false).
import { products, reviews } from './data.mjs';
import { serve } from './http.mjs';

serve('reviews', {
  '/reviews/:productId': ({ productId }) => {
    const list = products[productId] ? (reviews[productId] ?? []) : undefined;
    // Rounded to one decimal, as a shop shows it (4.7, not 4.666666666666667).
    const average = list?.length
      ? Math.round((list.reduce((s, r) => s + r.stars, 0) / list.length) * 10) / 10
      : null;
    return {
      body: list && { productId: Number(productId), average, count: list.length, reviews: list },
      delay: productId === '4' ? 600 : 40,
    };
  },
});
