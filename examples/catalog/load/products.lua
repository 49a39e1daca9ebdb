-- wrk script: GET /products/{id} for ids drawn uniformly from 1..500, every product of
-- the seed data, so each request reads one of 500 keys.
local thread_count = 0

function setup(thread)
    thread_count = thread_count + 1
    thread:set("seed", thread_count)
end

function init(args)
    math.randomseed(os.time() + seed)
end

function request()
    return wrk.format("GET", "/products/" .. math.random(1, 500))
end
