-- The catalog: categories and their products. Written in SQL that SQLite and Postgres
-- both accept, since one set of migrations serves both.
CREATE TABLE categories (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL
);

CREATE TABLE products (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    -- In cents.
    price BIGINT NOT NULL,
    category_id BIGINT NOT NULL REFERENCES categories (id)
);

CREATE INDEX products_by_category ON products (category_id);
