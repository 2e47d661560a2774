"""The demo market maker: an outside client that keeps a two-sided ladder on each market.

It reaches the exchange only as any bot would, through the signed REST API
and the WebSocket; it imports no model, service or engine code (a test in
``markets/tests/test_market_maker_boundary.py`` keeps it that way).

Pure core, unit-tested without a network:

- ``quoting``: market filters, the desired ladder (tick, lot, min notional,
  max quantity, budgets, inventory skew), the re-quote plan, taker orders.
- ``pricing``: the reference price (bounded random walk, or a price file).
- ``book``: a local order book kept from depth snapshots and updates.
- ``portfolio``: inventory and profit and loss from balances.
- ``backoff``: reconnect delays.
- ``config``: settings and environment, checked once.

Thin I/O shell: ``client`` (REST over httpx, signing, WebSocket headers) and
``bot`` (the asyncio loop: quote, re-quote, take, follow the WebSocket or poll
when it is down, reconnect with backoff, log a summary, cancel on exit).
``manage.py run_market_maker`` parses options, installs signal handlers and
runs ``bot.MarketMaker``.
"""
