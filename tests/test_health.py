"""/health's checks on their own: a real engine passes, a wrong output or an error fails."""

from dataclasses import replace

from imagepipe.web.health import CHECKS, run_checks, sample


def test_every_mode_passes_with_a_real_engine(engine):
    results = run_checks(engine, sample())
    written = [name for name, transform, _ in CHECKS if transform.format in engine.formats]
    assert [r["mode"] for r in results] == written
    assert all(r["ok"] for r in results), results


def test_a_wrong_size_fails_its_check(engine):
    def too_small(data, transform, defaults):
        return engine.transform(data, replace(transform, width=7, height=None, mode="fit",
                                              enlarge=False, crop=None, rotate=0, trim=False,
                                              then=()),
                                defaults)

    results = run_checks(engine, sample(), too_small)
    assert results and not any(r["ok"] for r in results)
    assert all(r["got"][0] == 7 for r in results)


def test_an_error_fails_its_check_naming_it(engine):
    def failing(data, transform, defaults):
        raise RuntimeError("decoder gone")

    results = run_checks(engine, sample(), failing)
    assert results and all(not r["ok"] and r["error"] == "decoder gone" for r in results)


def test_a_format_the_engine_cannot_write_is_skipped(engine):
    limited = type(engine)(engine.limits, {"jpg", "png"})
    results = run_checks(limited, sample())
    assert "force" not in {r["mode"] for r in results}  # its check writes WebP
    assert all(r["ok"] for r in results)
