// AWS's second-generation elements (crowd-html-elements-v2.js) for generative-AI work:
// crowd-text-ranking and crowd-question-answer-generation. AWS documents their attributes
// but not their answers; the shapes here are loopin's (see docs/worker-console.md):
//   crowd-text-ranking:  {"<name>": {"ordinalRankings": [{"dimension", "ranks": [rank of each response]}]}}
//   crowd-question-answer-generation:
//     {"<name>": {"questionAnswerPairs": [{"question", "answer", "tags": [...], "answerSpan"?: {startOffset, endOffset}}]}}
(function () {
  'use strict';
  var C = window.LoopinCrowd;

  function words(text) {
    var t = String(text || '').trim();
    return t ? t.split(/\s+/).length : 0;
  }

  class TextRanking extends C.Element {
    build() {
      var self = this;
      var regions = C.takeRegions(this, ['short-instructions', 'full-instructions']);
      this.responses = (C.jsonAttr(this, 'responses', []) || []).map(String);
      this.dimensions = (C.jsonAttr(this, 'ordinal-ranking-dimensions', []) || [])
        .filter(function (d) { return d && typeof d === 'object' && d.name !== undefined; })
        .map(function (d) { return { name: String(d.name), allowTie: d.allowTie === true || d.allowTie === 'true' }; });
      var n = this.responses.length;
      this._selects = {};
      var table = C.h('table.lc-ranking', {}, [
        C.h('thead', {}, [C.h('tr', {}, [C.h('th', { text: 'Response' })].concat(this.dimensions.map(function (d) {
          return C.h('th', { text: d.name + (d.allowTie ? ' (ties allowed)' : '') });
        })))]),
        C.h('tbody', {}, this.responses.map(function (response, i) {
          return C.h('tr', {}, [C.h('td.lc-response', { text: response })].concat(self.dimensions.map(function (d) {
            var options = [C.h('option', { value: '', text: '–' })];
            for (var r = 1; r <= n; r++) options.push(C.h('option', { value: String(r), text: String(r) }));
            var select = C.h('select.lc-input.lc-rank', { 'aria-label': d.name + ': rank of response ' + (i + 1) }, options);
            select.addEventListener('change', function () { C.clearProblem(self); });
            (self._selects[d.name] = self._selects[d.name] || []).push(select);
            return C.h('td', {}, [select]);
          })));
        })),
      ]);
      var main = [];
      var text = this.getAttribute('text');
      if (text) main.push(C.h('div.lc-target.lc-prompt', { text: text }));
      main.push(C.h('p.lc-help', { text: 'Rank the responses for each quality: 1 is the best.' }), table);
      C.layout(this, this.getAttribute('header'), main, [C.instructions(regions)]);
    }

    get value() {
      var self = this;
      return {
        ordinalRankings: this.dimensions.map(function (d) {
          return {
            dimension: d.name,
            ranks: (self._selects[d.name] || []).map(function (s) { return s.value === '' ? null : Number(s.value); }),
          };
        }),
      };
    }

    _crowdValidate() {
      var rankings = this.value.ordinalRankings;
      for (var i = 0; i < rankings.length; i++) {
        var ranks = rankings[i].ranks;
        if (ranks.indexOf(null) >= 0) return 'Rank every response for ' + rankings[i].dimension + '.';
        if (!this.dimensions[i].allowTie && new Set(ranks).size !== ranks.length) {
          return 'Give each response a different rank for ' + rankings[i].dimension + '.';
        }
      }
      return '';
    }

    _crowdAnswer() {
      return this.value;
    }
  }

  class QuestionAnswerGeneration extends C.Element {
    build() {
      var self = this;
      var regions = C.takeRegions(this, ['short-instructions', 'full-instructions']);
      this.text = this.getAttribute('text') || '';
      this.minQuestions = C.numAttr(this, 'min-questions', 1);
      this.maxQuestions = C.numAttr(this, 'max-questions', 0);
      this.limits = {
        question: [C.numAttr(this, 'question-min-words', 1), C.numAttr(this, 'question-max-words', 0)],
        answer: [C.numAttr(this, 'answer-min-words', 1), C.numAttr(this, 'answer-max-words', 0)],
      };
      this.tags = (C.jsonAttr(this, 'question-tags', []) || []).map(String);
      this.customTags = C.boolAttr(this, 'allow-custom-question-tags');
      this.pairs = [];
      this.textBox = C.h('div.lc-text.lc-qa-text', { text: this.text });
      this._list = C.h('div.lc-qa-pairs');
      this._add = C.h('button.lc-button.lc-normal', { type: 'button', text: 'Add a question', onclick: function () { self.addPair(); } });
      C.layout(
        this,
        this.getAttribute('header'),
        [this.textBox, C.h('p.lc-help', { text: 'Write questions this text answers, with their answers. ' +
          'Select words in the text, then "Use the selected text" to quote them as the answer.' }), this._list, this._add],
        [C.instructions(regions)]
      );
      this.textBox.addEventListener('mouseup', function () {
        var sel = window.getSelection();
        self._lastSelection = sel.rangeCount && !sel.isCollapsed ? self._span(sel.getRangeAt(0)) : null;
      });
      for (var i = 0; i < Math.max(1, this.minQuestions); i++) this.addPair();
    }

    _span(range) {
      if (!this.textBox.contains(range.startContainer) || !this.textBox.contains(range.endContainer)) return null;
      var before = document.createRange();
      before.setStart(this.textBox, 0);
      before.setEnd(range.startContainer, range.startOffset);
      var start = Array.from(before.toString()).length;
      var text = range.toString();
      return { startOffset: start, endOffset: start + Array.from(text).length, text: text };
    }

    addPair() {
      var self = this;
      if (this.maxQuestions && this.pairs.length >= this.maxQuestions) return;
      var pair = { span: null };
      pair.question = C.h('textarea.lc-input.lc-qa-question', { rows: 2, 'aria-label': 'Question' });
      pair.answer = C.h('textarea.lc-input.lc-qa-answer', { rows: 2, 'aria-label': 'Answer' });
      pair.answer.addEventListener('input', function () { pair.span = null; });
      pair.tagBoxes = this.tags.map(function (tag) {
        return C.h('input', { type: 'checkbox', value: tag });
      });
      pair.custom = this.customTags ? C.h('input.lc-input.lc-qa-custom-tag', { type: 'text', placeholder: 'Other tags, comma-separated' }) : null;
      var quote = C.h('button.lc-linkbutton', { type: 'button', text: 'Use the selected text', onclick: function () {
        var span = self._lastSelection;
        if (!span) return;
        pair.answer.value = span.text;
        pair.span = { startOffset: span.startOffset, endOffset: span.endOffset };
      } });
      var remove = C.h('button.lc-linkbutton', { type: 'button', text: 'Remove', onclick: function () {
        if (self.pairs.length <= Math.max(1, self.minQuestions)) return;
        self.pairs.splice(self.pairs.indexOf(pair), 1);
        pair.box.remove();
        self._update();
      } });
      pair.box = C.h('fieldset.lc-qa-pair', {}, [
        C.h('legend', { text: 'Question and answer' }),
        C.h('label.lc-field', {}, [C.h('span.lc-field-label', { text: 'Question' }), pair.question]),
        C.h('label.lc-field', {}, [C.h('span.lc-field-label', { text: 'Answer' }), pair.answer]),
        quote,
        this.tags.length || pair.custom ? C.h('div.lc-qa-tags', {}, pair.tagBoxes.map(function (box) {
          return C.h('label.lc-choice', {}, [box, box.value]);
        }).concat(pair.custom ? [pair.custom] : [])) : null,
        remove,
      ]);
      this.pairs.push(pair);
      this._list.appendChild(pair.box);
      this._update();
      C.clearProblem(this);
    }

    _update() {
      this._add.disabled = !!this.maxQuestions && this.pairs.length >= this.maxQuestions;
    }

    get value() {
      return {
        questionAnswerPairs: (this.pairs || []).map(function (pair) {
          var tags = pair.tagBoxes.filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
          if (pair.custom) {
            pair.custom.value.split(',').forEach(function (t) {
              t = t.trim();
              if (t && tags.indexOf(t) < 0) tags.push(t);
            });
          }
          var item = { question: pair.question.value.trim(), answer: pair.answer.value.trim(), tags: tags };
          if (pair.span) item.answerSpan = pair.span;
          return item;
        }),
      };
    }

    _crowdValidate() {
      var pairs = this.value.questionAnswerPairs;
      var limits = this.limits;
      if (pairs.length < this.minQuestions) return 'Write at least ' + this.minQuestions + ' questions.';
      for (var i = 0; i < pairs.length; i++) {
        var parts = [['question', pairs[i].question], ['answer', pairs[i].answer]];
        for (var j = 0; j < parts.length; j++) {
          var n = words(parts[j][1]);
          var lim = limits[parts[j][0]];
          if (n < Math.max(1, lim[0])) return 'Question ' + (i + 1) + ': the ' + parts[j][0] + ' needs at least ' + Math.max(1, lim[0]) + ' word(s).';
          if (lim[1] && n > lim[1]) return 'Question ' + (i + 1) + ': the ' + parts[j][0] + ' may have at most ' + lim[1] + ' words.';
        }
      }
      return '';
    }

    _crowdAnswer() {
      return this.value;
    }
  }

  customElements.define('crowd-text-ranking', TextRanking);
  customElements.define('crowd-question-answer-generation', QuestionAnswerGeneration);
})();
