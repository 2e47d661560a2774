"""Market creation checks that every amount the market can produce is exact at its asset's precision,
and market status changes (trading, cancel-only, halted)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from accounts.models import Asset
from exchange_site.amounts import decimal_places
from exchange_site.errors import ApplicationError
from markets.models import Market
from markets.services import market_create, market_set_status, validate_filters
from tests.factories import AssetFactory

D = Decimal


@pytest.fixture
def cents(db):
    """A quote asset with 2 decimals, like a fiat currency."""
    return AssetFactory(symbol="EUR", precision=2)


@pytest.mark.django_db
def test_a_market_whose_tick_times_lot_is_finer_than_the_quote_is_refused(btc, cents):
    with pytest.raises(ApplicationError) as refused:
        market_create(base=btc, quote=cents, tick_size=D("0.01"), lot_size=D("0.1"))
    assert refused.value.code == "invalid_market_filters"
    assert refused.value.message == "Tick x lot (0.001) has more decimals than EUR (2)."
    assert not Market.objects.exists()


@pytest.mark.django_db
def test_tick_times_lot_at_the_quote_precision_is_accepted(btc, cents):
    market = market_create(base=btc, quote=cents, tick_size=D("0.1"), lot_size=D("0.1"))
    assert market.symbol == "BTC_EUR"


@pytest.mark.django_db
def test_the_exact_condition_is_tick_times_lot_not_the_sum_of_decimals(btc):
    """0.5 x 0.2 = 0.1: every notional is a whole number of tenths, though the decimals add up to 2."""
    quote = AssetFactory(symbol="TEN", precision=1)
    market_create(base=btc, quote=quote, tick_size=D("0.5"), lot_size=D("0.2"))


@pytest.mark.django_db
def test_a_lot_finer_than_the_base_is_refused(cents, usdt):
    with pytest.raises(ApplicationError) as refused:
        market_create(base=cents, quote=usdt, tick_size=D("0.01"), lot_size=D("0.001"))
    assert refused.value.message == "Lot size 0.001 has more decimals than EUR (2)."


@pytest.mark.django_db
def test_a_maximum_notional_must_be_above_the_minimum(btc, usdt):
    with pytest.raises(ApplicationError) as refused:
        market_create(
            base=btc, quote=usdt, tick_size=D("0.01"), lot_size=D("0.001"), min_notional=D(10), max_notional=D(10)
        )
    assert refused.value.code == "invalid_market_filters"
    market = market_create(base=btc, quote=usdt, tick_size=D("0.01"), lot_size=D("0.001"), max_notional=D(10**6))
    assert market.max_notional == D(10**6)


@pytest.mark.django_db
def test_model_validation_refuses_the_same_filters(btc, cents):
    market = Market(symbol="BTC_EUR", base=btc, quote=cents, tick_size=D("0.01"), lot_size=D("0.1"))
    with pytest.raises(ValidationError) as refused:
        market.full_clean()
    assert "Tick x lot (0.001) has more decimals than EUR (2)." in str(refused.value)
    Market(symbol="BTC_EUR", base=btc, quote=cents, tick_size=D("0.01"), lot_size=D("1")).full_clean()


@pytest.mark.django_db
def test_market_status_takes_cancel_only(market):
    market_set_status(market=market, status="cancel_only")
    market.refresh_from_db()
    assert market.status == Market.Status.CANCEL_ONLY and not market.is_trading
    with pytest.raises(ApplicationError) as refused:
        market_set_status(market=market, status="paused")
    assert refused.value.code == "invalid_market_status"


steps = st.builds(lambda digit, exponent: D(digit).scaleb(-exponent), st.sampled_from([1, 2, 5, 25]), st.integers(0, 8))


@given(base_precision=st.integers(0, 8), quote_precision=st.integers(0, 8), tick=steps, lot=steps,
       ticks=st.integers(1, 10**6), lots=st.integers(1, 10**6))  # fmt: skip
def test_accepted_filters_make_every_notional_exact(base_precision, quote_precision, tick, lot, ticks, lots):
    """Whatever validate_filters accepts, any price x quantity is exact in the quote asset (and the
    quantity in the base asset); whatever it refuses has a notional that is not."""
    base, quote = Asset(symbol="B", precision=base_precision), Asset(symbol="Q", precision=quote_precision)
    try:
        validate_filters(base=base, quote=quote, tick_size=tick, lot_size=lot)
    except ApplicationError:
        accepted = False
    else:
        accepted = True
    if accepted:
        assert decimal_places(ticks * tick * lots * lot) <= quote_precision
        assert decimal_places(lots * lot) <= base_precision
    else:
        # One tick times one lot (the smallest trade), or one lot, is already too fine.
        assert decimal_places(tick * lot) > quote_precision or decimal_places(lot) > base_precision
