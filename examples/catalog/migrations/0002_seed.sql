-- Seed data: 5 categories and 500 products, 100 in each category.
INSERT INTO categories (id, name) VALUES
    (1, 'Lamps'),
    (2, 'Desks'),
    (3, 'Chairs'),
    (4, 'Shelves'),
    (5, 'Rugs');

INSERT INTO products (id, name, price, category_id)
WITH RECURSIVE seq (n) AS (
    SELECT 1
    UNION ALL
    SELECT n + 1 FROM seq WHERE n < 500
)
SELECT n, 'Product ' || n, 499 + (n * 7919) % 20000, 1 + (n - 1) % 5 FROM seq;
