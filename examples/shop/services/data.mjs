// The shop's catalogue: a handful of products, their brands, stock and reviews.
const image = (id, n) => ({ url: `https://img.shop.example/p${id}/${n}.jpg`, width: 1200, alt: `view ${n}` });

export const brands = {
  1: { id: 1, name: 'Lumen & Co', country: 'DK' },
  2: { id: 2, name: 'Oakline', country: 'SE' },
};

export const products = {
  1: {
    id: 1,
    name: 'Arc floor lamp',
    price: 189,
    currency: 'EUR',
    brandId: 1,
    description: 'A tall brass arc lamp with a linen shade.',
  },
  2: {
    id: 2,
    name: 'Oak side table',
    price: 129,
    currency: 'EUR',
    brandId: 2,
    description: 'Solid oak, oiled, with a hidden drawer.',
  },
  3: {
    id: 3,
    name: 'Desk lamp',
    price: 69,
    currency: 'EUR',
    brandId: 1,
    description: 'An adjustable steel desk lamp.',
  },
  4: {
    id: 4,
    name: 'Oak bench',
    price: 249,
    currency: 'EUR',
    brandId: 2,
    description: 'A long bench for a hallway or a table.',
  },
};
for (const p of Object.values(products)) {
  p.images = [1, 2, 3, 4, 5, 6].map((n) => image(p.id, n));
  p.specs = { weightKg: 2 + p.id, materials: p.brandId === 1 ? ['brass', 'linen'] : ['oak'] };
  p.supplierCost = Math.round(p.price * 0.4); // internal: the gateway must never show it
}

export const stock = { 1: 12, 2: 0, 3: 40, 4: 3 };

export const reviews = {
  1: [
    { author: 'mia', stars: 5, text: 'Lovely warm light.' },
    { author: 'jon', stars: 4, text: 'Tall, check your ceiling.' },
    { author: 'ana', stars: 5, text: 'Worth it.' },
  ],
  2: [{ author: 'li', stars: 4, text: 'Solid and simple.' }],
  3: [],
  4: [{ author: 'sam', stars: 3, text: 'Arrived scratched, replaced quickly.' }],
};

export const carts = {
  alice: {
    id: 'alice',
    items: [
      { productId: 1, qty: 1 },
      { productId: 3, qty: 2 },
    ],
  },
  bob: {
    id: 'bob',
    items: [
      { productId: 2, qty: 1 },
      { productId: 4, qty: 1 },
      { productId: 3, qty: 1 },
    ],
  },
};

export const customers = {
  alice: { id: 'alice', name: 'Alice', email: 'alice@shop.example', country: 'NL' },
  bob: { id: 'bob', name: 'Bob', email: 'bob@shop.example', country: 'BE' },
};
