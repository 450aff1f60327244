"""Plot the distribution benchmark's host completion times at build time.

Reads the JSON written by ``tools/bench/distribution_benchmark.py --json``
(``distribution_plot_json`` in conf.py) and draws, per strategy, how many
hosts had the image cached against the time since the cast, with
matplotlib's Agg backend. The PNG goes into the HTML build's ``_static``
directory; the ``.. distribution-plot::`` directive shows it.
"""

import html
import json
import os

from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx.errors import ExtensionError

IMAGE = 'distribution-completion.png'

#: The benchmark's strategies, in the order of doc/distribution.md.
STRATEGIES = ('sequential', 'parallel', 'squid', 'bittorrent')


def render(json_path, png_path):
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    with open(json_path) as f:
        result = json.load(f)
    runs = {run['strategy']: run for run in result['results']}
    figure, axes = pyplot.subplots(figsize=(8, 5.5), dpi=100)
    for strategy in STRATEGIES + tuple(sorted(set(runs) - set(STRATEGIES))):
        run = runs.get(strategy)
        if not run or not run.get('times'):
            continue
        times = sorted(run['times'])
        counts = range(1, len(times) + 1)
        axes.step(times, counts, where='post', linewidth=2,
                  label='%s (last %.1f s)' % (strategy, run['last']))
    axes.axvline(result['bound_seconds'], color='grey', linestyle='--',
                 label='bound S_c/B_host + decompression (%.1f s)'
                 % result['bound_seconds'])
    axes.set_xscale('log')
    axes.set_xlabel('seconds since the cast (log scale)')
    axes.set_ylabel('hosts with the image cached')
    axes.set_ylim(0, result['hosts'] + 1)
    axes.set_title('%d hosts, %d proxies, hosts\' links at %g Mbit/s; '
                   'artifact %.1f MB'
                   % (result['hosts'], result['proxies'],
                      result['host_bps'] / 1e6,
                      result['artifact_bytes'] / 1e6))
    axes.grid(True, which='both', alpha=0.3)
    axes.legend(loc='upper center', bbox_to_anchor=(0.5, -0.15), ncol=2,
                fontsize='small')
    figure.tight_layout()
    os.makedirs(os.path.dirname(png_path), exist_ok=True)
    figure.savefig(png_path)
    pyplot.close(figure)


def builder_inited(app):
    if app.builder.format != 'html':
        return
    json_path = app.config.distribution_plot_json
    if not json_path or not os.path.exists(json_path):
        raise ExtensionError('distribution_plot_json: no benchmark result '
                             'at %r' % json_path)
    render(json_path, os.path.join(app.outdir, '_static', IMAGE))


class DistributionPlot(Directive):
    """``.. distribution-plot::`` -- the figure drawn by builder_inited."""

    has_content = True

    def run(self):
        env = self.state.document.settings.env
        depth = env.docname.count('/')
        src = '../' * depth + '_static/' + IMAGE
        alt = ('Hosts with the image cached over time, one line per '
               'distribution strategy')
        caption = html.escape(" ".join(self.content))
        markup = ('<figure class="align-default">'
                  '<img src="%s" alt="%s" style="max-width: 100%%"/>'
                  '<figcaption><p>%s</p></figcaption></figure>'
                  % (src, alt, caption))
        return [nodes.raw('', markup, format='html')]


def setup(app):
    app.add_config_value('distribution_plot_json', None, 'env')
    app.connect('builder-inited', builder_inited)
    app.add_directive('distribution-plot', DistributionPlot)
    return {'version': '1.0', 'parallel_read_safe': True,
            'parallel_write_safe': True}
