// The shop's web front: lists the catalog through the gateway's routing (/api/catalog) and shows
// a product page composed by the web frontend (/web/products/:id, Gateway Aggregation).
const list = document.querySelector('#products');
const detail = document.querySelector('#detail');

async function json(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url} answered ${res.status}`);
  return res.json();
}

async function showProduct(id) {
  detail.textContent = 'loading…';
  const page = await json(`/web/products/${encodeURIComponent(id)}`);
  const stock = page.stock ? `${page.stock.available} in stock` : 'stock unknown';
  const rating = page.reviews
    ? `${page.reviews.average} / 5 (${page.reviews.count} reviews)`
    : 'no reviews yet';
  detail.replaceChildren(
    Object.assign(document.createElement('h2'), { textContent: page.product.name }),
    Object.assign(document.createElement('p'), {
      textContent: `${page.product.price} ${page.product.currency ?? ''}`,
    }),
    Object.assign(document.createElement('p'), {
      textContent: `${page.brand?.name ?? ''} · ${stock} · ${rating}`,
    }),
  );
}

json('/api/catalog/products')
  .then((products) => {
    list.replaceChildren(
      ...products.map((p) => {
        const item = document.createElement('li');
        const link = Object.assign(document.createElement('a'), {
          href: `/products/${p.id}`,
          textContent: `${p.name} — ${p.price}`,
        });
        link.addEventListener('click', (e) => {
          e.preventDefault();
          history.pushState({}, '', link.href);
          showProduct(p.id).catch((err) => (detail.textContent = err.message));
        });
        item.append(link);
        return item;
      }),
    );
    const m = /^\/products\/([^/]+)$/.exec(location.pathname);
    if (m) return showProduct(m[1]);
  })
  .catch((err) => (list.textContent = err.message));
